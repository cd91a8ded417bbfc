"""The console's operational webhook pages: where Hookpost sends its own events (an endpoint
created, disabled, a delivery failing...), as /api/v1/operational-webhook/endpoint manages them,
through the operational service (endpoints of Hookpost's own hidden application).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response

from hookpost.api.dependencies import SessionDep, StateDep
from hookpost.attempts.schemas import status_text
from hookpost.attempts.service import attempt_page
from hookpost.console.web import ConsoleRoute, check_csrf, render, require_admin_session
from hookpost.endpoints.schemas import EndpointIn, EndpointPatch
from hookpost.endpoints.service import endpoint_page, rotate_secret
from hookpost.kit.pagination import Ordering, PageParams
from hookpost.operational.dependencies import OperationalAppDep, OperationalEndpointDep
from hookpost.operational.events import EVENT_TYPES
from hookpost.operational.service import (
    create_operational_endpoint,
    update_operational_endpoint,
)
from hookpost.pages.forms import EndpointFormDep, Iterator, notice, see_other
from hookpost.pages.views import PAGE_SIZE, SHOWN_AT_ONCE, Done
from hookpost.storage.models import Endpoint

HERE = "/console/operational-webhook"
router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
pages = APIRouter(prefix=HERE, route_class=ConsoleRoute, dependencies=[Depends(require_admin_session)])
actions = APIRouter(
    prefix=HERE, route_class=ConsoleRoute, dependencies=[Depends(require_admin_session), Depends(check_csrf)]
)


@dataclass(frozen=True)
class OperationalEventType:
    """One of Hookpost's own event types, as the event type picker shows a catalogue's."""

    name: str
    description: str = ""
    schemas: dict[str, Any] | None = None
    deprecated: bool = False


CATALOGUE = [OperationalEventType(name) for name in EVENT_TYPES]


def _path(endpoint: Endpoint) -> str:
    return f"{HERE}/{endpoint.id}"


@pages.get("")
async def operational_endpoints(
    request: Request, application: OperationalAppDep, session: SessionDep, done: Done = None
) -> Response:
    """GET /api/v1/operational-webhook/endpoint."""
    endpoints = await endpoint_page(session, application, PageParams(SHOWN_AT_ONCE, None), Ordering.ASCENDING)
    context = {"endpoints": endpoints, "catalogue": CATALOGUE, "notice": notice(done)}
    return render(request, "operational_endpoints.html", context)


@actions.post("")
async def create_operational_endpoint_action(
    application: OperationalAppDep, session: SessionDep, state: StateDep, form: EndpointFormDep
) -> Response:
    """POST /api/v1/operational-webhook/endpoint (no event type ticked: all of them)."""
    data = EndpointIn(url=form.url, description=form.description, event_types=form.event_types or None)
    endpoint = await create_operational_endpoint(session, application, data, state.settings)
    return see_other(_path(endpoint) + "?done=created")


@pages.get("/{endpoint_id}")
async def operational_endpoint(
    request: Request,
    endpoint: OperationalEndpointDep,
    session: SessionDep,
    iterator: Iterator = None,
    done: Done = None,
) -> Response:
    """GET .../operational-webhook/endpoint/{id}, and its attempts (as an endpoint's)."""
    attempts = await attempt_page(session, PageParams(PAGE_SIZE, iterator), endpoint_id=endpoint.id)
    context = {"endpoint": endpoint, "attempts": attempts, "status_text": status_text, "notice": notice(done)}
    return render(request, "operational_endpoint.html", context)


@actions.post("/{endpoint_id}/disabled")
async def set_operational_disabled_action(
    endpoint: OperationalEndpointDep, session: SessionDep, state: StateDep, disabled: Annotated[bool, Form()]
) -> Response:
    """Disable or enable it (the API's PUT with ``disabled``)."""
    await update_operational_endpoint(session, endpoint, EndpointPatch(disabled=disabled), state.settings)
    return see_other(_path(endpoint) + ("?done=disabled" if disabled else "?done=enabled"))


@actions.post("/{endpoint_id}/secret")
async def operational_endpoint_secret(request: Request, endpoint: OperationalEndpointDep) -> Response:
    """GET .../{id}/secret, asked for by a form's POST (see the console's endpoint secret)."""
    return render(request, "operational_secret.html", {"endpoint": endpoint})


@actions.post("/{endpoint_id}/secret/rotate")
async def rotate_operational_secret_action(endpoint: OperationalEndpointDep, state: StateDep) -> Response:
    """POST .../{id}/secret/rotate with the default grace period."""
    rotate_secret(endpoint, state.settings)
    return see_other(_path(endpoint) + "?done=rotated")


@pages.get("/{endpoint_id}/delete")
async def delete_operational_endpoint_page(request: Request, endpoint: OperationalEndpointDep) -> Response:
    """The step before DELETE .../operational-webhook/endpoint/{id}, with a button to confirm."""
    here = _path(endpoint)
    context = {
        "kind": "operational webhook endpoint",
        "name": endpoint.url,
        "action": f"{here}/delete",
        "back": here,
        "crumbs": [(HERE, "Operational webhooks")],
        "consequence": "Hookpost stops sending it its events at once; its attempts go with it. This cannot be undone.",
    }
    return render(request, "confirm_delete.html", context)


@actions.post("/{endpoint_id}/delete")
async def delete_operational_endpoint_action(endpoint: OperationalEndpointDep, session: SessionDep) -> Response:
    """DELETE .../operational-webhook/endpoint/{id}, confirmed."""
    await session.delete(endpoint)
    return see_other(f"{HERE}?done=deleted")


router.include_router(pages)
router.include_router(actions)
