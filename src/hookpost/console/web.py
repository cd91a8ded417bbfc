"""The console's own page kit: its templates (its pages, then the shared partials), its cookies
and CSRF check, its route class and error page, and ``render`` with them (``pages.web``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import Request, Response

from hookpost.kit.web_session import CSRF_COOKIE
from hookpost.pages.web import TEMPLATES_DIR, CsrfCheck, PageCookies, PageRoute, page_templates
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
