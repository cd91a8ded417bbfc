"""The console's own page kit: its templates (its pages, then the shared partials), its cookies
and CSRF check, its route class and error page, and ``render`` with them (``pages.web``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import Request, Response

from hookpost.auth.web_sessions import web_session_ended
from hookpost.kit.web_session import ADMIN_SUBJECT, CSRF_COOKIE
from hookpost.pages.web import (
    TEMPLATES_DIR,
    CsrfCheck,
    PageCookies,
    PageRoute,
    SignInRequired,
    page_templates,
    session_of,
    state_of,
)
from hookpost.pages.web import render as render_page

TEMPLATES = page_templates(Path(__file__).parent / "templates", TEMPLATES_DIR)

# Never framed, so SameSite=Lax on every path.
CONSOLE_COOKIES = PageCookies(CSRF_COOKIE, "/")
check_csrf = CsrfCheck(CONSOLE_COOKIES)


def render(
    request: Request, template: str, context: Mapping[str, Any] | None = None, status_code: int = 200
) -> Response:
    return render_page(request, template, context, status_code, templates=TEMPLATES, cookies=CONSOLE_COOKIES)


def error_page(request: Request, status_code: int, detail: str | list[str]) -> Response:
    details = detail if isinstance(detail, list) else [detail]
    return render(request, "error.html", {"status_code": status_code, "details": details}, status_code=status_code)


class ConsoleRoute(PageRoute):
    def error_page(self, request: Request, status_code: int, detail: str | list[str]) -> Response:
        return error_page(request, status_code, detail)


async def require_admin_session(request: Request) -> None:
    """A signed-in console session that was not signed out (its cookie may outlive that)."""
    web_session = session_of(request)
    if web_session is None or web_session.subject != ADMIN_SUBJECT:
        raise SignInRequired
    # A session of its own, ended before the page runs. On SQLite every transaction takes the
    # write lock up front (BEGIN IMMEDIATE, storage/database.py): had the page's session kept
    # this check's transaction open, a second connection in the same request (the overview's
    # readiness check) would wait on that lock, held by the request itself, until busy_timeout.
    async with state_of(request).sessionmaker() as session:
        if await web_session_ended(session, web_session.session_id):
            raise SignInRequired
