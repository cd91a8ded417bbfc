"""What every server-rendered page of Hookpost shares, the console's and the app portal's:
templates and their filters, the signed session, cookies, CSRF, security headers, forms.

Each front (``console.web``, ``portal.web``) makes its own templates (its pages, then the
shared partials in ``templates/``), its cookies and CSRF check, and a ``PageRoute`` with its
error page; a page renders through ``render`` with them, which puts the CSRF token into the
page and the security headers on it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from hookpost.api.errors import HookpostError, status_and_code
from hookpost.delivery.signing import shown_key
from hookpost.event_types.schemas import newest_schema
from hookpost.kit.errors import DomainError, InvalidInput
from hookpost.kit.time import as_utc
from hookpost.kit.web_session import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    WebSession,
    WebSessions,
    web_sessions,
)
from hookpost.state import AppState

PACKAGE_DIR = Path(__file__).parent
STATIC_DIR = PACKAGE_DIR / "static"


def _when(value: datetime | None) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def _input_time(value: datetime | None) -> str:
    """For a datetime-local input, which takes no zone: the time in UTC, as the labels say."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S") if value else ""


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def _pretty_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def _example(schemas: dict[str, Any] | None) -> str:
    """An event type's first example (of its newest schema), as send-example sends it; "" if none."""
    examples = (newest_schema(schemas) or {}).get("examples")
    first = examples[0] if isinstance(examples, list) and examples else None
    return json.dumps(first, indent=2, ensure_ascii=False) if isinstance(first, dict) else ""


def _schema(schemas: dict[str, Any] | None) -> str:
    """An event type's newest JSON Schema without its examples (shown apart); "" if none."""
    schema = {key: value for key, value in (newest_schema(schemas) or {}).items() if key != "examples"}
    return json.dumps(schema, indent=2, ensure_ascii=False) if schema else ""


TEMPLATES_DIR = PACKAGE_DIR / "templates"


def page_templates(*directories: Path) -> Jinja2Templates:
    """Templates looked up in ``directories`` in order, with the filters every page uses (a front
    puts its own pages first, then ``TEMPLATES_DIR``'s shared partials)."""
    templates = Jinja2Templates(directory=list(directories))
    templates.env.filters.update(
        when=_when,
        input_time=_input_time,
        duration=_duration,
        pretty_json=_pretty_json,
        example=_example,
        schema=_schema,
        shown_key=shown_key,
    )
    return templates


# Only our own scripts and styles (no inline ones: htmx is told not to add any), WebSocket
# and fetches to this origin, no framing (the app portal will take its frame-ancestors from
# a setting instead).
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONSOLE_CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class SignInRequired(Exception):
    """The page needs a signed-in session; the route answers with a redirect to sign in."""

    def __init__(self, sign_in_path: str = "/console/sign-in") -> None:
        super().__init__(sign_in_path)
        self.sign_in_path = sign_in_path


class CsrfRefused(Exception):
    """A POST without a valid CSRF token."""


def state_of(request: Request) -> AppState:
    state: AppState = request.state.hookpost
    return state


def sessions_of(request: Request) -> WebSessions:
    state = state_of(request)
    return web_sessions(state.admin_token, state.settings.console_session_hours * 3600)


def session_of(request: Request) -> WebSession | None:
    return sessions_of(request).read(request.cookies.get(SESSION_COOKIE))


def secure_cookies(request: Request) -> bool:
    """Secure cookies over HTTPS (as the proxy reports it); plain HTTP on loopback keeps working."""
    return request.url.scheme == "https"


def secure_context(request: Request) -> bool:
    """Whether the browser takes a ``Secure`` cookie from this address: HTTPS, or a loopback host,
    which browsers treat as secure over plain HTTP too (Chromium does for localhost and 127.0.0.1)."""
    if request.url.scheme == "https":
        return True
    host = (request.url.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_COOKIE_VALUE = re.compile(r"[A-Za-z0-9._\-]*")


def cookie_header(name: str, value: str, *, path: str, max_age: int | None, secure: bool, cross_site: bool) -> str:
    """A ``Set-Cookie`` value, built here because Starlette writes ``Partitioned`` only on Python 3.14.

    ``cross_site``: ``SameSite=None; Secure; Partitioned`` (CHIPS), the one kind of cookie browsers
    still send to a frame on another site; it lives in that site's partition only.
    Otherwise ``SameSite=Lax``, ``Secure`` when ``secure``."""
    if not _COOKIE_VALUE.fullmatch(value):
        raise ValueError("a cookie value of ours is URL-safe base64 and dots")
    parts = [f"{name}={value}", f"Path={path}", "HttpOnly"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if cross_site:
        parts += ["Secure", "SameSite=None", "Partitioned"]
    else:
        parts += ["Secure", "SameSite=Lax"] if secure else ["SameSite=Lax"]
    return "; ".join(parts)


@dataclass(frozen=True)
class PageCookies:
    """How a front writes its cookies: its CSRF cookie's name, their path, and whether they must
    reach a frame on another site (the app portal's, when embedding is allowed)."""

    csrf_cookie: str
    path: str
    cross_site: Callable[[Request], bool] = lambda request: False

    def write(self, response: Response, request: Request, name: str, value: str, max_age: int | None = None) -> None:
        header = cookie_header(
            name,
            value,
            path=self.path,
            max_age=max_age,
            secure=secure_cookies(request),
            cross_site=self.cross_site(request),
        )
        response.headers.append("set-cookie", header)

    def clear(self, response: Response, request: Request, name: str) -> None:
        self.write(response, request, name, "", max_age=0)


@dataclass(frozen=True)
class CsrfCheck:
    """Refuse a POST whose form (or ``X-CSRF-Token`` header) lacks the token for the front's CSRF cookie."""

    cookies: PageCookies

    async def __call__(self, request: Request) -> None:
        token = request.headers.get(CSRF_HEADER)
        if token is None:
            form = await request.form()
            value = form.get(CSRF_FIELD)
            token = value if isinstance(value, str) else None
        if not sessions_of(request).csrf_valid(request.cookies.get(self.cookies.csrf_cookie), token):
            raise CsrfRefused


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    status_code: int = 200,
    *,
    templates: Jinja2Templates,
    cookies: PageCookies,
) -> Response:
    """The page, with the CSRF token its forms carry (setting the browser's nonce if it has none)."""
    sessions = sessions_of(request)
    nonce = request.cookies.get(cookies.csrf_cookie)
    fresh = not nonce
    if not nonce:
        nonce = sessions.new_csrf_nonce()
    values = {
        "csrf_field": CSRF_FIELD,
        "csrf_token": sessions.csrf_token(nonce),
        "session": session_of(request),
        # The console's; the app portal's pages override them (the shared partials read them).
        "pages_root": "/console",
        "operator": True,
        "read_only": False,
        "may": _operator_may,
    }
    response = templates.TemplateResponse(request, template, values | dict(context or {}), status_code=status_code)
    if fresh:
        # Lax (or None, framed), not Strict: a page opened from a link elsewhere must not get a new
        # nonce, which would expire the forms of the other tabs. The signature stops other sites.
        cookies.write(response, request, cookies.csrf_cookie, nonce)
    return response


def _operator_may(action: str) -> bool:
    """The console's answer to whether an action (its route function's name) is offered: the
    operator may do them all."""
    return True


def validation_messages(error: ValidationError | RequestValidationError | InvalidInput) -> list[str]:
    """Each problem as "field: message", for a person reading a form."""
    messages = []
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ()) if part not in ("body", "query", "path")]
        prefix = f"{'.'.join(location)}: " if location else ""
        messages.append(prefix + str(item.get("msg", "invalid")))
    return messages


class PageRoute(APIRoute):
    """A route that answers as a web page: errors as pages, sign-in as a redirect, security headers.

    Each front subclasses it with its error page (``error_page``), and a front with other
    framing rules (the app portal's ``frame-ancestors`` from a setting) overrides
    ``security_headers``.
    """

    def security_headers(self, request: Request) -> Mapping[str, str]:
        return SECURITY_HEADERS

    def error_page(self, request: Request, status_code: int, detail: str | list[str]) -> Response:
        raise NotImplementedError("a front's route class renders its own error page")

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired as refusal:
                target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe="")
                response = RedirectResponse(f"{refusal.sign_in_path}?next={target}", status_code=303)
            except CsrfRefused:
                detail = "This form has expired or did not come from this page: reload it."
                response = self.error_page(request, 403, detail)
            except (HookpostError, DomainError) as error:
                status_code, _ = status_and_code(type(error))
                response = self.error_page(request, status_code, error.detail)
                if isinstance(error, HookpostError):
                    response.headers.update(error.headers() or {})
            except (RequestValidationError, ValidationError, InvalidInput) as error:
                response = self.error_page(request, 422, validation_messages(error))
            response.headers.update(self.security_headers(request))
            return response

        return handle
