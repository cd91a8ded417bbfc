"""``/api/v1/operational-webhook/endpoint``: where Hookpost sends its operational events.

The same shapes and rules as an application's endpoints (endpoints.service), on Hookpost's
own hidden application.
"""

from fastapi import APIRouter, Response, status

from hookpost.api.dependencies import SessionDep, StateDep
from hookpost.api.errors import error_responses
from hookpost.api.query import PageDep, UpsertPath
from hookpost.endpoints.schemas import (
    EndpointHeadersIn,
    EndpointHeadersOut,
    EndpointIn,
    EndpointOut,
    EndpointSecretOut,
    EndpointSecretRotateIn,
    EndpointUpdate,
)
from hookpost.endpoints.service import endpoint_page, rotate_secret, visible_headers
from hookpost.kit.errors import Conflict, NotFound
from hookpost.kit.pagination import Ordering
from hookpost.kit.schemas import ListResponse
from hookpost.operational.dependencies import OperationalAppDep, OperationalEndpointDep
from hookpost.operational.service import (
    create_operational_endpoint,
    upsert_operational_endpoint,
)

router = APIRouter(prefix="/operational-webhook/endpoint", tags=["Webhook Endpoint"])
_NOT_FOUND = error_responses(NotFound)


@router.get("", response_model=ListResponse[EndpointOut], responses=error_responses())
async def list_endpoints(
    application: OperationalAppDep, session: SessionDep, page: PageDep, order: Ordering = Ordering.ASCENDING
) -> ListResponse[EndpointOut]:
    result = await endpoint_page(session, application, page, order)
    return result.response(EndpointOut.model_validate)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=EndpointOut, responses=error_responses(Conflict))
async def create(application: OperationalAppDep, data: EndpointIn, session: SessionDep, state: StateDep) -> EndpointOut:
    endpoint = await create_operational_endpoint(session, application, data, state.settings)
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
    endpoint_id: UpsertPath,
    application: OperationalAppDep,
    data: EndpointUpdate,
    session: SessionDep,
    state: StateDep,
    response: Response,
) -> EndpointOut:
    """Replace the endpoint, or create it with the path as its uid."""
    endpoint, created = await upsert_operational_endpoint(session, application, endpoint_id, data, state.settings)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return EndpointOut.model_validate(endpoint)


@router.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def delete(endpoint: OperationalEndpointDep, session: SessionDep) -> None:
    await session.delete(endpoint)


@router.get("/{endpoint_id}/secret", response_model=EndpointSecretOut, responses=_NOT_FOUND)
async def get_secret(endpoint: OperationalEndpointDep) -> EndpointSecretOut:
    return EndpointSecretOut.of(endpoint.secret)


@router.post("/{endpoint_id}/secret/rotate", response_model=EndpointSecretOut, responses=_NOT_FOUND)
async def rotate(endpoint: OperationalEndpointDep, data: EndpointSecretRotateIn, state: StateDep) -> EndpointSecretOut:
    rotate_secret(endpoint, state.settings, data.key, data.grace_period_seconds)
    return EndpointSecretOut.of(endpoint.secret)


@router.get("/{endpoint_id}/headers", response_model=EndpointHeadersOut, responses=_NOT_FOUND)
async def get_headers(endpoint: OperationalEndpointDep) -> EndpointHeadersOut:
    headers, sensitive = visible_headers(endpoint)
    return EndpointHeadersOut(headers=headers, sensitive=sensitive)


@router.put("/{endpoint_id}/headers", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def set_headers(endpoint: OperationalEndpointDep, data: EndpointHeadersIn) -> None:
    endpoint.headers = data.headers
