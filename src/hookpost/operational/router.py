"""``/api/v1/operational-webhook/endpoint``: where Hookpost sends its operational events.

The same shapes and rules as an application's endpoints (endpoints.service), on Hookpost's
own hidden application.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy import select

from hookpost.api.dependencies import SessionDep, StateDep
from hookpost.api.errors import error_responses
from hookpost.api.query import PageDep
from hookpost.endpoints.schemas import (
    EndpointHeadersIn,
    EndpointHeadersOut,
    EndpointIn,
    EndpointOut,
    EndpointSecretOut,
    EndpointSecretRotateIn,
    EndpointUpdate,
)
from hookpost.endpoints.service import (
    create_endpoint,
    find_endpoint,
    rotate_secret,
    upsert_endpoint,
    visible_headers,
)
from hookpost.kit.errors import Conflict, NotFound
from hookpost.kit.pagination import Ordering, paginate
from hookpost.kit.schemas import ListResponse
from hookpost.kit.unsupported import NOT_SUPPORTED
from hookpost.operational import events
from hookpost.operational.service import operational_application
from hookpost.settings import Settings
from hookpost.storage.models import Application, Endpoint

router = APIRouter(prefix="/operational-webhook/endpoint", tags=["Webhook Endpoint"])
# Imported for its hook: every session of this process reports endpoint changes.
assert events.EVENT_TYPES
_NOT_FOUND = error_responses(NotFound)


async def _application(session: SessionDep) -> Application:
    return await operational_application(session)


OperationalAppDep = Annotated[Application, Depends(_application)]


def _refuse_channels(data: EndpointIn | EndpointUpdate) -> None:
    """Svix's operational endpoints have no ``channels``, nor do its events: refused, not ignored."""
    if data.channels is not None:
        detail = f"{NOT_SUPPORTED}: operational events have no channels"
        raise RequestValidationError([{"loc": ("body", "channels"), "msg": detail, "type": "not_supported"}])


def _endpoint_settings(state: StateDep) -> Settings:
    """Operational endpoints filter on Hookpost's own event types, which the catalogue does not hold."""
    return state.settings.model_copy(update={"require_known_event_types": False})


async def _endpoint(
    session: SessionDep,
    application: OperationalAppDep,
    endpoint_id: Annotated[str, Path(description="Endpoint id or uid")],
) -> Endpoint:
    endpoint = await find_endpoint(session, application, endpoint_id)
    if endpoint is None:
        raise NotFound("Operational webhook endpoint not found")
    return endpoint


OperationalEndpointDep = Annotated[Endpoint, Depends(_endpoint)]


@router.get("", response_model=ListResponse[EndpointOut], responses=error_responses())
async def list_endpoints(
    application: OperationalAppDep, session: SessionDep, page: PageDep, order: Ordering = Ordering.ASCENDING
) -> ListResponse[EndpointOut]:
    query = select(Endpoint).where(Endpoint.app_id == application.id)
    result = await paginate(session, query, Endpoint.id, page, order)
    return result.response(EndpointOut.model_validate)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=EndpointOut, responses=error_responses(Conflict))
async def create(application: OperationalAppDep, data: EndpointIn, session: SessionDep, state: StateDep) -> EndpointOut:
    _refuse_channels(data)
    endpoint = await create_endpoint(session, application, data, _endpoint_settings(state))
    return EndpointOut.model_validate(endpoint)


@router.get("/{endpoint_id}", response_model=EndpointOut, responses=_NOT_FOUND)
async def get(endpoint: OperationalEndpointDep) -> EndpointOut:
    return EndpointOut.model_validate(endpoint)


@router.put(
    "/{endpoint_id}",
    response_model=EndpointOut,
    responses=error_responses(NotFound, Conflict) | {201: {"model": EndpointOut, "description": "Created"}},
)
async def upsert(
    endpoint_id: str,
    application: OperationalAppDep,
    data: EndpointUpdate,
    session: SessionDep,
    state: StateDep,
    response: Response,
) -> EndpointOut:
    """Replace the endpoint, or create it with the path as its uid."""
    _refuse_channels(data)
    endpoint, created = await upsert_endpoint(session, application, endpoint_id, data, _endpoint_settings(state))
    if created:
        response.status_code = status.HTTP_201_CREATED
    return EndpointOut.model_validate(endpoint)


@router.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def delete(endpoint: OperationalEndpointDep, session: SessionDep) -> None:
    await session.delete(endpoint)


@router.get("/{endpoint_id}/secret", response_model=EndpointSecretOut, responses=_NOT_FOUND)
async def get_secret(endpoint: OperationalEndpointDep) -> EndpointSecretOut:
    return EndpointSecretOut(key=endpoint.secret)


@router.post("/{endpoint_id}/secret/rotate", response_model=EndpointSecretOut, responses=_NOT_FOUND)
async def rotate(endpoint: OperationalEndpointDep, data: EndpointSecretRotateIn, state: StateDep) -> EndpointSecretOut:
    grace = state.settings.secret_grace_period if data.grace_period_seconds is None else data.grace_period_seconds
    rotate_secret(endpoint, data.key, grace)
    return EndpointSecretOut(key=endpoint.secret)


@router.get("/{endpoint_id}/headers", response_model=EndpointHeadersOut, responses=_NOT_FOUND)
async def get_headers(endpoint: OperationalEndpointDep) -> EndpointHeadersOut:
    headers, sensitive = visible_headers(endpoint)
    return EndpointHeadersOut(headers=headers, sensitive=sensitive)


@router.put("/{endpoint_id}/headers", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def set_headers(endpoint: OperationalEndpointDep, data: EndpointHeadersIn) -> None:
    endpoint.headers = data.headers
