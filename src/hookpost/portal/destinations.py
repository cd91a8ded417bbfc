"""The app portal's destination pages: its one application's destinations, each with its batch
attempts, and the API's destination operations as forms, each under the token's authorisation
(``mirrors``) and only within the session's application (``own_application``; a destination of
another application is not found under this one's path)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response

from hookpost.api.dependencies import SessionDep, StateDep
from hookpost.applications.dependencies import ApplicationDep
from hookpost.delivery.signing import shown_key
from hookpost.destinations.dependencies import DestinationDep
from hookpost.pages.destinations import (
    DestinationFormDep,
    DestinationPageDep,
    DestinationsPageDep,
    add_destination,
    destination_path,
    rotate_destination_secret_now,
    set_destination_status,
)
from hookpost.pages.forms import see_other
from hookpost.portal.web import (
    PORTAL_PATH,
    CatalogueDep,
    PortalPrincipal,
    PortalRoute,
    check_portal_csrf,
    mirrors,
    offer_actions,
    own_application,
    page,
)

DESTINATIONS = "/app/{app_id}/destination"
DESTINATION = DESTINATIONS + "/{destination_id}"

router = APIRouter(prefix=PORTAL_PATH, route_class=PortalRoute, include_in_schema=False)
pages = APIRouter(route_class=PortalRoute, dependencies=[Depends(own_application)])
actions = APIRouter(route_class=PortalRoute, dependencies=[Depends(own_application), Depends(check_portal_csrf)])


@pages.get(DESTINATIONS, dependencies=[mirrors(("GET", DESTINATIONS), ("GET", "/event-type"))])
async def destinations(
    request: Request,
    application: ApplicationDep,
    principal: PortalPrincipal,
    parts: DestinationsPageDep,
    offered: CatalogueDep,
) -> Response:
    """The application's destinations, and a form to add one."""
    return page(
        request, "_destinations.html", parts | {"catalogue": offered}, principal=principal, application=application
    )


@actions.post(DESTINATIONS, dependencies=[mirrors(("POST", DESTINATIONS))])
async def create_destination_action(
    application: ApplicationDep,
    session: SessionDep,
    state: StateDep,
    form: DestinationFormDep,
    principal: PortalPrincipal,
) -> Response:
    """POST .../destination."""
    destination = await add_destination(session, application, form, state.settings, feature_flags=principal.held_flags)
    return see_other(destination_path(PORTAL_PATH, destination) + "?done=created")


@pages.get(DESTINATION, dependencies=[mirrors(("GET", DESTINATION), ("GET", DESTINATION + "/attempt"))])
async def destination(
    request: Request, application: ApplicationDep, principal: PortalPrincipal, parts: DestinationPageDep
) -> Response:
    """The destination, its status and its batch attempts (live), and what may be done to it."""
    return page(request, "_destination.html", parts, principal=principal, application=application)


@actions.post(DESTINATION + "/status", dependencies=[mirrors(("PATCH", DESTINATION))])
async def set_destination_status_action(
    destination: DestinationDep, session: SessionDep, state: StateDep, enabled: Annotated[bool, Form()]
) -> Response:
    """PATCH .../destination/{id} with ``status``."""
    await set_destination_status(session, destination, enabled, state.settings)
    done = "destination-enabled" if enabled else "destination-disabled"
    return see_other(destination_path(PORTAL_PATH, destination) + f"?done={done}")


@pages.get(DESTINATION + "/delete", dependencies=[mirrors(("GET", DESTINATION), ("DELETE", DESTINATION))])
async def delete_destination_page(
    request: Request, application: ApplicationDep, destination: DestinationDep, principal: PortalPrincipal
) -> Response:
    """The step before DELETE .../destination/{id}, with a button to confirm."""
    context = {"destination": destination}
    return page(request, "_destination_delete.html", context, principal=principal, application=application)


@actions.post(DESTINATION + "/delete", dependencies=[mirrors(("DELETE", DESTINATION))])
async def delete_destination_action(
    application: ApplicationDep, destination: DestinationDep, session: SessionDep
) -> Response:
    """DELETE .../destination/{id}, confirmed."""
    await session.delete(destination)
    return see_other(f"{PORTAL_PATH}/app/{application.id}/destination?done=destination-deleted")


@actions.post(DESTINATION + "/secret/rotate", dependencies=[mirrors(("POST", DESTINATION + "/secret/rotate"))])
async def rotate_destination_secret_action(
    request: Request,
    application: ApplicationDep,
    destination: DestinationDep,
    session: SessionDep,
    state: StateDep,
    principal: PortalPrincipal,
) -> Response:
    """POST .../destination/{id}/secret/rotate: the new secret, on this answer only (never cached)."""
    key = await rotate_destination_secret_now(session, destination, state.settings)
    context = {"destination": destination, "key": shown_key(key)}
    return page(request, "_destination_secret.html", context, principal=principal, application=application)


offer_actions(actions.routes)
router.include_router(pages)
router.include_router(actions)
