"""What the app portal's pages share: their session, who it is, what it may do, how pages look.

The session is a cookie holding the id of the access token it was opened with (never the
token), signed as the console's are (kit.web_session). Every request looks the token up
again, so a session ends when its token expires or is logged out, and its application and
capabilities are the token's. Each page and action names the API operation it is, and
``auth.policy`` decides whether the token may call that operation, as it does for the API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from hookpost.api.dependencies import SessionDep
from hookpost.api.errors import Unauthorized
from hookpost.auth.policy import API, Forbidden, Principal, owns, principal_of, route_problem, within_rate
from hookpost.auth.schemas import WEEK
from hookpost.auth.service import find_token_by_id
from hookpost.kit.errors import NotFound
from hookpost.kit.time import as_utc
from hookpost.kit.web_session import WebSession, WebSessions, web_sessions
from hookpost.pages.views import catalogue
from hookpost.pages.web import (
    TEMPLATES_DIR,
    CsrfCheck,
    PageCookies,
    PageRoute,
    page_templates,
    render,
    secure_context,
    state_of,
)
from hookpost.settings import Settings
from hookpost.storage.models import AccessToken, Application, EventType

PORTAL_DIR = Path(__file__).parent
STATIC_DIR = PORTAL_DIR / "static"
# The portal's own templates first, then the partials it shares with the console (attempts, health, pager).
TEMPLATES = page_templates(PORTAL_DIR / "templates", TEMPLATES_DIR)

PORTAL_PATH = "/portal"
SESSION_COOKIE = "hookpost_portal"  # its own: a browser may hold a console session as well
CSRF_COOKIE = "hookpost_portal_csrf"  # its own too: framed, it is written unlike the console's
SUBJECT_PREFIX = "app-portal:"
SESSION_ENDED = (
    "Your access to this portal has ended, or the link was not valid: open the portal link you were given again."
)


# --- The session ------------------------------------------------------------------------


def _sessions(admin_token: str) -> WebSessions:
    # As long as the longest token lives; each session also ends at its own token's expiry.
    return web_sessions(admin_token, WEEK)


def portal_sessions(request: Request) -> WebSessions:
    return _sessions(state_of(request).admin_token)


def session_cookie_value(request: Request, access: AccessToken) -> str:
    return portal_sessions(request).issue(SUBJECT_PREFIX + access.id, expires_at=as_utc(access.expires_at).timestamp())


def _token_id(web_session: WebSession | None) -> str | None:
    if web_session is None or not web_session.subject.startswith(SUBJECT_PREFIX):
        return None
    return web_session.subject.removeprefix(SUBJECT_PREFIX)


def session_token_id(admin_token: str, cookie: str | None) -> str | None:
    """The id of the access token a portal session cookie holds; None if it is not a live session of ours."""
    return _token_id(_sessions(admin_token).read(cookie))


async def portal_principal(request: Request, session: SessionDep) -> Principal:
    """The application-scoped caller this browser's session stands for; refused once its token is not live."""
    token_id = session_token_id(state_of(request).admin_token, request.cookies.get(SESSION_COOKIE))
    access = await find_token_by_id(session, token_id) if token_id else None
    if access is None:
        raise Unauthorized(SESSION_ENDED)
    principal = principal_of(access)
    await within_rate(state_of(request), principal)
    return principal


PortalPrincipal = Annotated[Principal, Depends(portal_principal)]


async def own_application(app_id: str, principal: PortalPrincipal, session: SessionDep) -> None:
    """Another application's pages do not exist for this session: 404, as for any unknown page."""
    if not await owns(session, principal, app_id):
        raise NotFound("Page not found")


async def offered_catalogue(principal: PortalPrincipal, session: SessionDep) -> list[EventType]:
    """The event types the endpoint forms offer: those the token's feature flags see; none read-only."""
    return [] if principal.read_only else await catalogue(session, principal.feature_flags)


CatalogueDep = Annotated[list[EventType], Depends(offered_catalogue)]


@dataclass(frozen=True)
class Mirrors:
    """The API operations (method, route under ``/api/v1``) a page or action is."""

    operations: tuple[tuple[str, str], ...]

    async def __call__(self, principal: PortalPrincipal) -> None:
        for method, route in self.operations:
            problem = route_problem(principal, method, API + route)
            if problem is not None:
                raise Forbidden(problem)


# The API operations each portal action (by its route function's name) mirrors: filled by
# ``portal.router`` once its actions are defined (``offer_actions``), read by the pages' ``may``.
_ACTIONS: dict[str, tuple[tuple[str, str], ...]] = {}


def offer_actions(routes: Sequence[BaseRoute]) -> None:
    """Let pages offer these actions: each by the API operations its ``mirrors`` names."""
    for route in routes:
        if isinstance(route, APIRoute):
            for dependency in route.dependant.dependencies:
                if isinstance(dependency.call, Mirrors):
                    _ACTIONS[route.name] = dependency.call.operations


def _may(principal: Principal | None) -> Callable[[str], bool]:
    """Whether a page offers the action of this name: only if the policy would let the session's
    token do it, so that a page shows no form the server refuses."""

    def may(action: str) -> bool:
        operations = _ACTIONS[action]  # a name no action has is a page's mistake: it fails loudly
        return principal is not None and all(
            route_problem(principal, method, API + route) is None for method, route in operations
        )

    return may


def mirrors(*operations: tuple[str, str]) -> Any:
    """A dependency refusing the page or action unless the token may call each of these API
    operations: the policy of ``auth.policy``, unchanged."""
    return Depends(Mirrors(operations))


# --- Cookies ----------------------------------------------------------------------------


def embedded_by_another_site(settings: Settings) -> bool:
    """Whether the operator lets another origin frame the portal (a source beyond 'self' and 'none')."""
    return any(source not in ("'self'", "'none'") for source in settings.portal_frame_ancestors)


def cross_site_cookies(request: Request) -> bool:
    """The portal's cookies are ``SameSite=None; Secure; Partitioned`` (so that they reach the
    portal framed on the operator's site, which sends no ``SameSite=Lax`` cookie to it) when
    embedding is allowed and the browser takes a ``Secure`` cookie here (HTTPS, or loopback);
    otherwise ``SameSite=Lax``, as the console's."""
    return embedded_by_another_site(state_of(request).settings) and secure_context(request)


PORTAL_COOKIES = PageCookies(CSRF_COOKIE, PORTAL_PATH, cross_site_cookies)
check_portal_csrf = CsrfCheck(PORTAL_COOKIES)


# --- Look and headers -------------------------------------------------------------------


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def security_headers(settings: Settings) -> dict[str, str]:
    """The console's policy, but framing from HOOKPOST_PORTAL_FRAME_ANCESTORS and the logo's origin."""
    ancestors = " ".join(settings.portal_frame_ancestors) or "'none'"
    images = " ".join(filter(None, ["'self'", "data:", _origin(settings.portal_logo_url)]))
    headers = {
        "content-security-policy": (
            f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; "
            f"connect-src 'self'; form-action 'self'; frame-ancestors {ancestors}; base-uri 'none'; object-src 'none'"
        ),
        "x-content-type-options": "nosniff",
        # The link's token is in the fragment, which no Referer carries; nothing else to give away either.
        "referrer-policy": "no-referrer",
        "cache-control": "no-store",
    }
    # X-Frame-Options for browsers without frame-ancestors; it cannot name other origins.
    if ancestors == "'none'":
        headers["x-frame-options"] = "DENY"
    elif ancestors == "'self'":
        headers["x-frame-options"] = "SAMEORIGIN"
    return headers


def page(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    principal: Principal | None = None,
    application: Application | None = None,
    status_code: int = 200,
) -> Response:
    """A portal page: the operator's look, the application, and whether the token only reads."""
    settings = state_of(request).settings
    values = {
        "product_name": settings.portal_product_name,
        "logo_url": settings.portal_logo_url,
        "app": application,
        "read_only": principal is None or principal.read_only,
        "may": _may(principal),
        "pages_root": PORTAL_PATH,
        "operator": False,
    }
    return render(
        request, template, values | dict(context or {}), status_code, templates=TEMPLATES, cookies=PORTAL_COOKIES
    )


class PortalRoute(PageRoute):
    """A portal page: the portal's headers and error page."""

    def security_headers(self, request: Request) -> Mapping[str, str]:
        return security_headers(state_of(request).settings)

    def error_page(self, request: Request, status_code: int, detail: str | list[str]) -> Response:
        details = detail if isinstance(detail, list) else [detail]
        return page(request, "error.html", {"status_code": status_code, "details": details}, status_code=status_code)
