"""The console's destination pages: an application's destinations, one destination with its batch
attempts, and the API's destination operations as forms (each route names the one it mirrors)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response

from hookpost.api.dependencies import SessionDep, StateDep
from hookpost.applications.dependencies import ApplicationDep
from hookpost.console.web import ConsoleRoute, check_csrf, render, require_admin_session
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
from hookpost.pages.views import catalogue

ROOT = "/console"
DESTINATIONS = "/app/{app_id}/destination"
DESTINATION = DESTINATIONS + "/{destination_id}"

router = APIRouter(prefix=ROOT, route_class=ConsoleRoute, include_in_schema=False)
pages = APIRouter(route_class=ConsoleRoute, dependencies=[Depends(require_admin_session)])
actions = APIRouter(route_class=ConsoleRoute, dependencies=[Depends(require_admin_session), Depends(check_csrf)])


@pages.get(DESTINATIONS)
async def destinations(request: Request, session: SessionDep, parts: DestinationsPageDep) -> Response:
    """GET .../destination, with a form for POST .../destination."""
    return render(request, "_destinations.html", parts | {"catalogue": await catalogue(session)})


@actions.post(DESTINATIONS)
async def create_destination_action(
    application: ApplicationDep, session: SessionDep, state: StateDep, form: DestinationFormDep
) -> Response:
    """POST .../destination."""
    destination = await add_destination(session, application, form, state.settings, feature_flags=None)
    return see_other(destination_path(ROOT, destination) + "?done=created")


@pages.get(DESTINATION)
async def destination(request: Request, parts: DestinationPageDep) -> Response:
    """GET .../destination/{id} and its attempts (GET .../destination/{id}/attempt)."""
    return render(request, "_destination.html", parts)


@actions.post(DESTINATION + "/status")
async def set_destination_status_action(
    destination: DestinationDep, session: SessionDep, state: StateDep, enabled: Annotated[bool, Form()]
) -> Response:
    """PATCH .../destination/{id} with ``status``."""
    await set_destination_status(session, destination, enabled, state.settings)
    done = "destination-enabled" if enabled else "destination-disabled"
    return see_other(destination_path(ROOT, destination) + f"?done={done}")


@pages.get(DESTINATION + "/delete")
async def delete_destination_page(
    request: Request, application: ApplicationDep, destination: DestinationDep
) -> Response:
    """The step before DELETE .../destination/{id}, with a button to confirm."""
    return render(request, "_destination_delete.html", {"app": application, "destination": destination})


@actions.post(DESTINATION + "/delete")
async def delete_destination_action(
    application: ApplicationDep, destination: DestinationDep, session: SessionDep
) -> Response:
    """DELETE .../destination/{id}, confirmed."""
    await session.delete(destination)
    return see_other(f"{ROOT}/app/{application.id}/destination?done=destination-deleted")


@actions.post(DESTINATION + "/secret/rotate")
async def rotate_destination_secret_action(
    request: Request, application: ApplicationDep, destination: DestinationDep, session: SessionDep, state: StateDep
) -> Response:
    """POST .../destination/{id}/secret/rotate: the new secret, on this answer only (never cached)."""
    key = await rotate_destination_secret_now(session, destination, state.settings)
    context = {"app": application, "destination": destination, "key": shown_key(key)}
    return render(request, "_destination_secret.html", context)


router.include_router(pages)
router.include_router(actions)
