"""The operators' console: pages over the same services, and the same rules, as the API.

Every action here is one the API offers (the route names the API operation it mirrors),
and the session stands in for the admin token: signing in takes the admin token.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request, Response

from hookpost.api.dependencies import SessionDep, StateDep
from hookpost.applications.dependencies import ApplicationDep
from hookpost.applications.schemas import ApplicationIn
from hookpost.applications.service import (
    ApplicationFilters,
    application_page,
    create_application,
    delete_application,
)
from hookpost.attempts.service import (
    attempt_rates,
)
from hookpost.auth.capabilities import granted
from hookpost.auth.schemas import HOUR
from hookpost.auth.service import mint_token, portal_link
from hookpost.auth.sign_in_throttle import count_failed_sign_in, sign_in_wait
from hookpost.auth.web_sessions import end_web_session
from hookpost.console.overview_chart import attempts_chart
from hookpost.console.web import (
    CONSOLE_COOKIES,
    ConsoleRoute,
    check_csrf,
    error_page,
    render,
    require_admin_session,
)
from hookpost.endpoints.dependencies import EndpointDep
from hookpost.endpoints.schemas import EndpointHeadersPatchIn, EndpointPatch
from hookpost.endpoints.service import (
    patch_headers,
    rotate_secret,
    update_endpoint,
    visible_headers,
)
from hookpost.kit.pagination import Ordering, PageParams
from hookpost.kit.time import utcnow
from hookpost.kit.web_session import ADMIN_SUBJECT, SESSION_COOKIE
from hookpost.messages.dependencies import MessageDep
from hookpost.observability import health
from hookpost.observability.metrics import read_backlog
from hookpost.pages.forms import EndpointFormDep, Iterator, notice, safe_next, see_other
from hookpost.pages.views import (
    PAGE_SIZE,
    ApplicationPageDep,
    EndpointPageDep,
    MessagePageDep,
    add_endpoint,
    catalogue,
    endpoint_path,
    recover_from_form,
    resend_now,
    send_example_of,
)
from hookpost.pages.web import session_of, sessions_of, state_of
from hookpost.storage.models import Endpoint

# An operator's portal link is for looking now, not for handing out: the shortest the API allows.
PORTAL_LINK_SECONDS = HOUR

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
pages = APIRouter(route_class=ConsoleRoute, dependencies=[Depends(require_admin_session)])
actions = APIRouter(route_class=ConsoleRoute, dependencies=[Depends(require_admin_session), Depends(check_csrf)])


# --- Signing in and out -----------------------------------------------------------------


@router.get("/sign-in")
async def sign_in_page(request: Request, next: str | None = None) -> Response:
    return render(request, "sign_in.html", {"next": safe_next(next, "/console/")})


@router.post("/sign-in", dependencies=[Depends(check_csrf)])
async def sign_in(
    request: Request, session: SessionDep, token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = ""
) -> Response:
    """Takes the admin token, as the API's bearer check does, and answers with the session cookie;
    throttled per client address (auth/sign_in_throttle.py)."""
    state = state_of(request)
    address = request.client.host if request.client else ""
    wait = await sign_in_wait(session, state.settings, address)
    if wait:
        error = f"Too many wrong tokens from your address: try again in {wait} seconds."
        page = render(request, "sign_in.html", {"next": safe_next(next, "/console/"), "error": error}, 429)
        page.headers["retry-after"] = str(wait)
        return page
    # Constant-time, as for the API.
    if not secrets.compare_digest(token.strip().encode(), state.admin_token.encode()):
        await count_failed_sign_in(session, state.settings, address)
        return render(
            request,
            "sign_in.html",
            {"next": safe_next(next, "/console/"), "error": "That is not the admin token."},
            401,
        )
    sessions = sessions_of(request)
    response = see_other(safe_next(next, "/console/"))
    CONSOLE_COOKIES.write(
        response, request, SESSION_COOKIE, sessions.issue(ADMIN_SUBJECT), int(sessions.max_age_seconds)
    )
    return response


@router.post("/sign-out", dependencies=[Depends(check_csrf)])
async def sign_out(request: Request, session: SessionDep) -> Response:
    """Ends the session on the server, so a copy of its cookie no longer signs in, and clears the cookie."""
    web_session = session_of(request)
    if web_session is not None:
        await end_web_session(session, web_session, sessions_of(request).max_age_seconds)
    response = see_other("/console/sign-in")
    CONSOLE_COOKIES.clear(response, request, SESSION_COOKIE)
    return response


# --- Overview ---------------------------------------------------------------------------


@pages.get("/")
async def overview(request: Request, session: SessionDep, state: StateDep) -> Response:
    """Readiness (as /readyz), the backlog (as /metrics) and the last minutes' attempts."""
    checks = await health.readiness(state.engine, state.settings)
    now = utcnow()
    backlog = await read_backlog(session)
    rates = await attempt_rates(session, now)
    context = {"checks": checks, "backlog": backlog, "oldest_age": backlog.oldest_age_seconds(now), "rates": rates}
    return render(request, "overview.html", context | {"chart": attempts_chart(rates, now)})


# --- Applications -----------------------------------------------------------------------


@pages.get("/app")
async def applications(
    request: Request,
    session: SessionDep,
    q: Annotated[str | None, Query(max_length=256)] = None,
    iterator: Iterator = None,
    done: str | None = None,
) -> Response:
    """GET /api/v1/app, with a search on name, uid and id."""
    result = await application_page(
        session, PageParams(PAGE_SIZE, iterator), Ordering.ASCENDING, ApplicationFilters(search=q)
    )
    return render(request, "applications.html", {"page": result, "q": q or "", "notice": notice(done)})


@actions.post("/app")
async def create_application_action(
    session: SessionDep, name: Annotated[str, Form()] = "", uid: Annotated[str, Form()] = ""
) -> Response:
    """POST /api/v1/app."""
    data = ApplicationIn(name=name.strip(), uid=uid.strip() or None)
    application, _ = await create_application(session, data, get_if_exists=False)
    return see_other(f"/console/app/{application.id}?done=created")


@pages.get("/app/{app_id}")
async def application(request: Request, session: SessionDep, parts: ApplicationPageDep) -> Response:
    """Its endpoints (GET .../endpoint) with their health, and its messages (GET .../msg) with filters."""
    return render(request, "application.html", parts | {"catalogue": await catalogue(session)})


@pages.get("/app/{app_id}/delete")
async def delete_application_page(request: Request, application: ApplicationDep) -> Response:
    """The step before DELETE /api/v1/app/{app_id}: what goes with it, and a button to confirm."""
    here = f"/console/app/{application.id}"
    return render(
        request,
        "confirm_delete.html",
        {"app": application, "kind": "application", "name": application.name, "action": f"{here}/delete", "back": here},
    )


@actions.post("/app/{app_id}/delete")
async def delete_application_action(application: ApplicationDep, session: SessionDep) -> Response:
    """DELETE /api/v1/app/{app_id}, confirmed."""
    await delete_application(session, application)
    return see_other("/console/app?done=app-deleted")


@actions.post("/app/{app_id}/portal-access")
async def portal_access_action(
    request: Request,
    application: ApplicationDep,
    session: SessionDep,
    state: StateDep,
    read_only: Annotated[bool, Form()] = False,
) -> Response:
    """POST /api/v1/auth/app-portal-access/{app_id}: a link to the application's portal, shown once."""
    token = await mint_token(
        session, application, capabilities=granted(None, read_only), expiry_seconds=PORTAL_LINK_SECONDS
    )
    link = portal_link(state.settings.public_url, str(request.base_url), token)
    return render(request, "portal_link.html", {"app": application, "link": link, "read_only_link": read_only})


@actions.post("/app/{app_id}/endpoint")
async def create_endpoint_action(
    application: ApplicationDep, session: SessionDep, state: StateDep, form: EndpointFormDep
) -> Response:
    """POST /api/v1/app/{app_id}/endpoint."""
    endpoint = await add_endpoint(session, application, form, state, feature_flags=None)
    return see_other(_endpoint_url(endpoint) + "?done=created")


# --- Endpoints --------------------------------------------------------------------------


def _endpoint_url(endpoint: Endpoint) -> str:
    return endpoint_path("/console", endpoint)


@pages.get("/app/{app_id}/endpoint/{endpoint_id}")
async def endpoint(request: Request, endpoint: EndpointDep, session: SessionDep, parts: EndpointPageDep) -> Response:
    """The endpoint (GET .../endpoint/{id}), its headers, its attempts and a recovery's progress."""
    headers, sensitive = visible_headers(endpoint)
    extra = {"headers": headers, "sensitive": sensitive, "catalogue": await catalogue(session)}
    return render(request, "endpoint.html", parts | extra)


@pages.get("/app/{app_id}/endpoint/{endpoint_id}/delete")
async def delete_endpoint_page(request: Request, application: ApplicationDep, endpoint: EndpointDep) -> Response:
    """The step before DELETE .../endpoint/{id}, with a button to confirm."""
    here = _endpoint_url(endpoint)
    return render(
        request,
        "confirm_delete.html",
        {"app": application, "kind": "endpoint", "name": endpoint.url, "action": f"{here}/delete", "back": here},
    )


@actions.post("/app/{app_id}/endpoint/{endpoint_id}/delete")
async def delete_endpoint_action(application: ApplicationDep, endpoint: EndpointDep, session: SessionDep) -> Response:
    """DELETE .../endpoint/{id}, confirmed."""
    await session.delete(endpoint)
    return see_other(f"/console/app/{application.id}?done=deleted")


@actions.post("/app/{app_id}/endpoint/{endpoint_id}/secret")
async def endpoint_secret(request: Request, application: ApplicationDep, endpoint: EndpointDep) -> Response:
    """GET .../endpoint/{id}/secret, asked for by a form's POST (with its CSRF token, so that no
    link, prefetch or Referer shows it); never cached."""
    return render(request, "secret.html", {"app": application, "endpoint": endpoint})


@actions.post("/app/{app_id}/endpoint/{endpoint_id}")
async def update_endpoint_action(
    request: Request,
    endpoint: EndpointDep,
    session: SessionDep,
    state: StateDep,
    form: EndpointFormDep,
    throttle_rate: Annotated[str, Form()] = "",
    set_headers: Annotated[str, Form()] = "",
    delete_headers: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """PATCH .../endpoint/{id}, and PATCH .../endpoint/{id}/headers."""
    headers: dict[str, str] = {}
    for line in set_headers.splitlines():
        if line.strip():
            name, separator, value = line.partition(":")
            if not separator:
                return error_page(request, 422, f"headers: {line.strip()!r} is not 'Name: value'")
            headers[name.strip()] = value.strip()
    header_change = EndpointHeadersPatchIn(headers=headers, delete_headers=delete_headers or [])
    try:
        rate = int(throttle_rate) if throttle_rate.strip() else None
    except ValueError:
        return error_page(request, 422, "throttle_rate: a whole number of messages per second, or empty")
    data = EndpointPatch(url=form.url, description=form.description, event_types=form.event_types, throttle_rate=rate)
    await update_endpoint(session, endpoint, data, state.settings, feature_flags=None)
    patch_headers(endpoint, header_change.headers, header_change.delete_headers)
    return see_other(_endpoint_url(endpoint) + "?done=saved")


@actions.post("/app/{app_id}/endpoint/{endpoint_id}/disabled")
async def set_disabled_action(
    request: Request,
    endpoint: EndpointDep,
    session: SessionDep,
    state: StateDep,
    disabled: Annotated[bool, Form()],
) -> Response:
    """PATCH .../endpoint/{id} with ``disabled``: enabling clears the reason and the failing run."""
    await update_endpoint(session, endpoint, EndpointPatch(disabled=disabled), state.settings, feature_flags=None)
    return see_other(_endpoint_url(endpoint) + ("?done=disabled" if disabled else "?done=enabled"))


@actions.post("/app/{app_id}/endpoint/{endpoint_id}/secret/rotate")
async def rotate_secret_action(request: Request, endpoint: EndpointDep, state: StateDep) -> Response:
    """POST .../endpoint/{id}/secret/rotate with the default grace period."""
    rotate_secret(endpoint, state.settings)
    return see_other(_endpoint_url(endpoint) + "?done=rotated")


@actions.post("/app/{app_id}/endpoint/{endpoint_id}/send-example")
async def send_example_action(
    endpoint: EndpointDep, session: SessionDep, state: StateDep, event_type: Annotated[str, Form()] = ""
) -> Response:
    """POST .../endpoint/{id}/send-example: the event type's schema example, to this endpoint alone."""
    await send_example_of(session, endpoint, event_type, state)
    return see_other(_endpoint_url(endpoint) + "?done=example")


@actions.post("/app/{app_id}/endpoint/{endpoint_id}/recover")
async def recover_action(endpoint: EndpointDep, session: SessionDep, since: Annotated[str, Form()] = "") -> Response:
    """POST .../endpoint/{id}/recover; the page then follows the background task."""
    return see_other(await recover_from_form(session, endpoint, since, "/console"))


# --- Messages ---------------------------------------------------------------------------


@pages.get("/app/{app_id}/msg/{msg_id}")
async def message(request: Request, parts: MessagePageDep) -> Response:
    """The message (GET .../msg/{id}), its destinations (GET .../msg/{id}/endpoint), its attempts."""
    return render(request, "message.html", parts)


@actions.post("/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend")
async def resend_action(
    request: Request, message: MessageDep, endpoint: EndpointDep, session: SessionDep, state: StateDep
) -> Response:
    """POST .../msg/{id}/endpoint/{endpoint_id}/resend."""
    await resend_now(session, message, endpoint, state)
    return see_other(f"/console/app/{message.app_id}/msg/{message.id}?done=resent")


router.include_router(pages)
router.include_router(actions)
