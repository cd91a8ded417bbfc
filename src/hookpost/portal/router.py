"""The app portal's pages: one application's endpoints and delivery log, for the operator's customer.

Each page and action is an API operation (named in ``mirrors``), done by the same service
function the API's route calls, under the token's authorisation (``auth.policy``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response

from hookpost.api.dependencies import SessionDep, StateDep
from hookpost.applications.dependencies import ApplicationDep
from hookpost.attempts.service import (
    last_attempts,
)
from hookpost.auth.service import find_token, revoke_token_by_id
from hookpost.endpoints.dependencies import EndpointDep
from hookpost.endpoints.schemas import EndpointPatch
from hookpost.endpoints.service import (
    rotate_secret,
    update_endpoint,
)
from hookpost.kit.time import as_utc, utcnow
from hookpost.messages.dependencies import MessageDep
from hookpost.pages.forms import EndpointFormDep, see_other
from hookpost.pages.views import (
    ApplicationPageDep,
    Done,
    EndpointPageDep,
    MessagePageDep,
    add_endpoint,
    endpoint_path,
    recover_from_form,
    resend_now,
    send_example_of,
)
from hookpost.pages.web import state_of
from hookpost.portal.web import (
    PORTAL_COOKIES,
    PORTAL_PATH,
    SESSION_COOKIE,
    CatalogueDep,
    PortalPrincipal,
    PortalRoute,
    check_portal_csrf,
    mirrors,
    offer_actions,
    own_application,
    page,
    session_cookie_value,
    session_token_id,
)
from hookpost.storage.models import Application, Endpoint

APP = "/app/{app_id}"
ENDPOINTS = APP + "/endpoint"
ENDPOINT = ENDPOINTS + "/{endpoint_id}"
MESSAGES = APP + "/msg"
MESSAGE = MESSAGES + "/{msg_id}"
EVENT_TYPES = "/event-type"

SIGNED_OUT = "You have signed out: your portal link no longer opens it. Ask for a new link where you found that one."

router = APIRouter(prefix=PORTAL_PATH, route_class=PortalRoute, include_in_schema=False)
pages = APIRouter(route_class=PortalRoute, dependencies=[Depends(own_application)])
actions = APIRouter(route_class=PortalRoute, dependencies=[Depends(own_application), Depends(check_portal_csrf)])


def _app_url(application: Application) -> str:
    return f"{PORTAL_PATH}/app/{application.id}"


def _endpoint_url(endpoint: Endpoint) -> str:
    return endpoint_path(PORTAL_PATH, endpoint)


# --- Opening the portal -----------------------------------------------------------------


@router.get("")
async def open_portal(request: Request, done: Done = None) -> Response:
    """Where links lead: a script hands the token in the link's fragment to the form below, which
    trades it for a session; the fragment leaves the address bar before anything else happens."""
    return page(request, "open.html", {"notice": SIGNED_OUT if done == "signed-out" else None})


@router.post("/session", dependencies=[Depends(check_portal_csrf)])
async def open_session(request: Request, session: SessionDep, token: Annotated[str, Form()] = "") -> Response:
    """The token (in the form's body, never in a URL) for an HttpOnly session cookie ending with it."""
    access = await find_token(session, token.strip())
    if access is None:
        error = "This link has expired or is not valid. Ask for a new link where you found this one."
        return page(request, "open.html", {"error": error}, status_code=401)
    response = see_other(f"{PORTAL_PATH}/app/{access.app_id}")
    remaining = int((as_utc(access.expires_at) - utcnow()).total_seconds())
    PORTAL_COOKIES.write(response, request, SESSION_COOKIE, session_cookie_value(request, access), max(1, remaining))
    return response


@router.post("/sign-out", dependencies=[Depends(check_portal_csrf)])
async def sign_out(request: Request, session: SessionDep) -> Response:
    """End the session: revoke the token it was opened with (POST /api/v1/auth/logout), so that
    neither a copy of the cookie nor the link opens the portal again; clear the cookie."""
    token_id = session_token_id(state_of(request).admin_token, request.cookies.get(SESSION_COOKIE))
    if token_id is not None:
        await revoke_token_by_id(session, token_id)
    response = see_other(f"{PORTAL_PATH}?done=signed-out")
    PORTAL_COOKIES.clear(response, request, SESSION_COOKIE)
    return response


@router.get("/theme.css")
async def theme(state: StateDep) -> Response:
    """The operator's accent colour (a setting, checked to be a colour) for the stylesheet."""
    css = f":root {{ --accent: {state.settings.portal_accent_color}; }}\n"
    return Response(css, media_type="text/css")


# --- The application: endpoints and messages ---------------------------------------------


@pages.get(
    "/app/{app_id}",
    dependencies=[mirrors(("GET", APP), ("GET", ENDPOINTS), ("GET", MESSAGES), ("GET", EVENT_TYPES))],
)
async def application(
    request: Request,
    application: ApplicationDep,
    principal: PortalPrincipal,
    parts: ApplicationPageDep,
    offered: CatalogueDep,
) -> Response:
    """The endpoints with their health, the message log with filters, a form to add an endpoint."""
    parts = parts | {"catalogue": offered}
    return page(request, "application.html", parts, principal=principal, application=application)


@actions.post("/app/{app_id}/endpoint", dependencies=[mirrors(("POST", ENDPOINTS))])
async def create_endpoint_action(
    application: ApplicationDep, session: SessionDep, state: StateDep, form: EndpointFormDep, principal: PortalPrincipal
) -> Response:
    """POST /api/v1/app/{app_id}/endpoint."""
    endpoint = await add_endpoint(session, application, form, state, feature_flags=principal.held_flags)
    return see_other(_endpoint_url(endpoint) + "?done=created")


# --- An endpoint ------------------------------------------------------------------------


@pages.get(
    "/app/{app_id}/endpoint/{endpoint_id}",
    dependencies=[mirrors(("GET", ENDPOINT), ("GET", APP + "/attempt/endpoint/{endpoint_id}"), ("GET", EVENT_TYPES))],
)
async def endpoint(
    request: Request,
    application: ApplicationDep,
    endpoint: EndpointDep,
    principal: PortalPrincipal,
    session: SessionDep,
    parts: EndpointPageDep,
    offered: CatalogueDep,
) -> Response:
    """The endpoint, its health, its attempts (filtered by status), a recovery's progress, and what
    may be done to it."""
    latest = await last_attempts(session, [endpoint.id])
    extra = {"last": latest.get(endpoint.id), "catalogue": offered}
    return page(request, "endpoint.html", parts | extra, principal=principal, application=application)


@actions.post("/app/{app_id}/endpoint/{endpoint_id}/secret", dependencies=[mirrors(("GET", ENDPOINT + "/secret"))])
async def endpoint_secret(
    request: Request, application: ApplicationDep, endpoint: EndpointDep, principal: PortalPrincipal
) -> Response:
    """GET .../endpoint/{id}/secret, asked for by a form's POST with its CSRF token (never by a
    link, a prefetch or a Referer); never to a read-only token, never cached."""
    return page(request, "secret.html", {"endpoint": endpoint}, principal=principal, application=application)


@actions.post("/app/{app_id}/endpoint/{endpoint_id}", dependencies=[mirrors(("PATCH", ENDPOINT))])
async def update_endpoint_action(
    endpoint: EndpointDep, session: SessionDep, state: StateDep, form: EndpointFormDep, principal: PortalPrincipal
) -> Response:
    """PATCH .../endpoint/{id}: URL, description and event types."""
    data = EndpointPatch(url=form.url, description=form.description, event_types=form.event_types)
    await update_endpoint(session, endpoint, data, state.settings, feature_flags=principal.held_flags)
    return see_other(_endpoint_url(endpoint) + "?done=saved")


@actions.post("/app/{app_id}/endpoint/{endpoint_id}/disabled", dependencies=[mirrors(("PATCH", ENDPOINT))])
async def set_disabled_action(
    endpoint: EndpointDep, session: SessionDep, state: StateDep, disabled: Annotated[bool, Form()]
) -> Response:
    """PATCH .../endpoint/{id} with ``disabled``."""
    await update_endpoint(session, endpoint, EndpointPatch(disabled=disabled), state.settings, feature_flags=None)
    return see_other(_endpoint_url(endpoint) + ("?done=disabled" if disabled else "?done=enabled"))


@actions.post("/app/{app_id}/endpoint/{endpoint_id}/delete", dependencies=[mirrors(("DELETE", ENDPOINT))])
async def delete_endpoint_action(application: ApplicationDep, endpoint: EndpointDep, session: SessionDep) -> Response:
    """DELETE .../endpoint/{id}."""
    await session.delete(endpoint)
    return see_other(_app_url(application) + "?done=deleted")


@actions.post(
    "/app/{app_id}/endpoint/{endpoint_id}/secret/rotate", dependencies=[mirrors(("POST", ENDPOINT + "/secret/rotate"))]
)
async def rotate_secret_action(endpoint: EndpointDep, state: StateDep) -> Response:
    """POST .../endpoint/{id}/secret/rotate with the default grace period."""
    rotate_secret(endpoint, state.settings)
    return see_other(_endpoint_url(endpoint) + "?done=rotated")


@actions.post(
    "/app/{app_id}/endpoint/{endpoint_id}/send-example", dependencies=[mirrors(("POST", ENDPOINT + "/send-example"))]
)
async def send_example_action(
    endpoint: EndpointDep, session: SessionDep, state: StateDep, event_type: Annotated[str, Form()] = ""
) -> Response:
    """POST .../endpoint/{id}/send-example: the event type's schema example, to this endpoint alone."""
    await send_example_of(session, endpoint, event_type, state)
    return see_other(_endpoint_url(endpoint) + "?done=example")


@actions.post("/app/{app_id}/endpoint/{endpoint_id}/recover", dependencies=[mirrors(("POST", ENDPOINT + "/recover"))])
async def recover_action(endpoint: EndpointDep, session: SessionDep, since: Annotated[str, Form()] = "") -> Response:
    """POST .../endpoint/{id}/recover: re-send, in the background, what failed since then; the page
    then follows the task (only this endpoint's: the API's /background-task is the admin's)."""
    return see_other(await recover_from_form(session, endpoint, since, PORTAL_PATH))


# --- A message --------------------------------------------------------------------------


@pages.get(
    "/app/{app_id}/msg/{msg_id}",
    dependencies=[mirrors(("GET", MESSAGE), ("GET", MESSAGE + "/endpoint"), ("GET", APP + "/attempt/msg/{msg_id}"))],
)
async def message(
    request: Request, application: ApplicationDep, principal: PortalPrincipal, parts: MessagePageDep
) -> Response:
    """The message, its status per endpoint, every attempt with the response kept, resend."""
    return page(request, "message.html", parts, principal=principal, application=application)


@actions.post(
    "/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend",
    dependencies=[mirrors(("POST", MESSAGE + "/endpoint/{endpoint_id}/resend"))],
)
async def resend_action(message: MessageDep, endpoint: EndpointDep, session: SessionDep, state: StateDep) -> Response:
    """POST .../msg/{id}/endpoint/{endpoint_id}/resend."""
    await resend_now(session, message, endpoint, state)
    return see_other(f"{PORTAL_PATH}/app/{message.app_id}/msg/{message.id}?done=resent")


offer_actions(actions.routes)
router.include_router(pages)
router.include_router(actions)
