from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from hookpost.api.dependencies import SessionDep, StateDep
from hookpost.api.errors import error_responses
from hookpost.api.query import PageDep, UpsertPath
from hookpost.applications.dependencies import ApplicationDep
from hookpost.auth.policy import PrincipalDep
from hookpost.background_tasks.schemas import BackgroundTaskOut, background_task_out
from hookpost.endpoints.dependencies import EndpointDep
from hookpost.endpoints.schemas import (
    EndpointHeadersIn,
    EndpointHeadersOut,
    EndpointHeadersPatchIn,
    EndpointIn,
    EndpointOut,
    EndpointPatch,
    EndpointSecretOut,
    EndpointSecretRotateIn,
    EndpointStats,
    EndpointUpdate,
    EventExampleIn,
    RecoverIn,
)
from hookpost.endpoints.service import (
    create_endpoint,
    endpoint_page,
    patch_headers,
    rotate_secret,
    send_example,
    start_recover,
    update_endpoint,
    upsert_endpoint,
    visible_headers,
)
from hookpost.kit.errors import Conflict, NotFound
from hookpost.kit.pagination import Ordering
from hookpost.kit.schemas import ListResponse, UtcDatetime
from hookpost.messages.schemas import MessageOut
from hookpost.messages.service import message_out
from hookpost.statistics.schemas import EndpointAttemptStats
from hookpost.statistics.service import attempt_stats, endpoint_stats

router = APIRouter(prefix="/app/{app_id}/endpoint", tags=["Endpoint"])
_NOT_FOUND = error_responses(NotFound)


@router.get("", response_model=ListResponse[EndpointOut], responses=_NOT_FOUND)
async def list_endpoints(
    application: ApplicationDep, session: SessionDep, page: PageDep, order: Ordering = Ordering.ASCENDING
) -> ListResponse[EndpointOut]:
    result = await endpoint_page(session, application, page, order)
    return result.response(EndpointOut.model_validate)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=EndpointOut, responses=error_responses(NotFound, Conflict)
)
async def create(
    application: ApplicationDep, data: EndpointIn, session: SessionDep, state: StateDep, principal: PrincipalDep
) -> EndpointOut:
    endpoint = await create_endpoint(session, application, data, state.settings, feature_flags=principal.held_flags)
    return EndpointOut.model_validate(endpoint)


@router.get("/{endpoint_id}", response_model=EndpointOut, responses=_NOT_FOUND)
async def get(endpoint: EndpointDep) -> EndpointOut:
    return EndpointOut.model_validate(endpoint)


@router.put(
    "/{endpoint_id}",
    response_model=EndpointOut,
    responses=error_responses(NotFound, Conflict) | {201: {"model": EndpointOut, "description": "Created"}},
)
async def upsert(
    endpoint_id: UpsertPath,
    application: ApplicationDep,
    data: EndpointUpdate,
    session: SessionDep,
    state: StateDep,
    response: Response,
    principal: PrincipalDep,
) -> EndpointOut:
    """Replace the endpoint, or create it with the path as its uid."""
    flags = principal.held_flags
    endpoint, created = await upsert_endpoint(
        session, application, endpoint_id, data, state.settings, feature_flags=flags
    )
    if created:
        response.status_code = status.HTTP_201_CREATED
    return EndpointOut.model_validate(endpoint)


@router.patch("/{endpoint_id}", response_model=EndpointOut, responses=error_responses(NotFound, Conflict))
async def patch(
    endpoint: EndpointDep, data: EndpointPatch, session: SessionDep, state: StateDep, principal: PrincipalDep
) -> EndpointOut:
    updated = await update_endpoint(session, endpoint, data, state.settings, feature_flags=principal.held_flags)
    return EndpointOut.model_validate(updated)


@router.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def delete(endpoint: EndpointDep, session: SessionDep) -> None:
    await session.delete(endpoint)


@router.get("/{endpoint_id}/secret", response_model=EndpointSecretOut, responses=_NOT_FOUND)
async def get_secret(endpoint: EndpointDep) -> EndpointSecretOut:
    return EndpointSecretOut.of(endpoint.secret)


@router.post("/{endpoint_id}/secret/rotate", response_model=EndpointSecretOut, responses=_NOT_FOUND)
async def rotate(endpoint: EndpointDep, data: EndpointSecretRotateIn, state: StateDep) -> EndpointSecretOut:
    """New secret now; the previous one keeps signing alongside it for the grace period (24 h)."""
    rotate_secret(endpoint, state.settings, data.key, data.grace_period_seconds)
    return EndpointSecretOut.of(endpoint.secret)


@router.post(
    "/{endpoint_id}/recover",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BackgroundTaskOut,
    responses=_NOT_FOUND,
)
async def recover(endpoint: EndpointDep, data: RecoverIn, session: SessionDep) -> BackgroundTaskOut:
    """Re-send, in the background, every message that failed to reach the endpoint in the window.

    Follow its progress at ``GET /api/v1/background-task/{id}``.
    """
    task = start_recover(session, endpoint, data.since, data.until)
    await session.flush()
    return background_task_out(task)


@router.get("/{endpoint_id}/headers", response_model=EndpointHeadersOut, responses=_NOT_FOUND)
async def get_headers(endpoint: EndpointDep) -> EndpointHeadersOut:
    headers, sensitive = visible_headers(endpoint)
    return EndpointHeadersOut(headers=headers, sensitive=sensitive)


@router.put("/{endpoint_id}/headers", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def set_headers(endpoint: EndpointDep, data: EndpointHeadersIn) -> None:
    endpoint.headers = data.headers


@router.patch("/{endpoint_id}/headers", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def update_headers(endpoint: EndpointDep, data: EndpointHeadersPatchIn) -> None:
    patch_headers(endpoint, data.headers, data.delete_headers)


@router.post(
    "/{endpoint_id}/send-example",
    response_model=MessageOut,
    responses=_NOT_FOUND,
)
async def send_example_message(
    endpoint: EndpointDep, data: EventExampleIn, session: SessionDep, state: StateDep
) -> MessageOut:
    """Send this endpoint alone a real message: the first (or ``exampleIndex``) example of the
    event type's newest schema, signed and retried like any other."""
    message = await send_example(
        session, endpoint, data, state.settings, events=state.events, dispatcher=state.dispatcher
    )
    return message_out(message)


@router.get("/{endpoint_id}/stats", response_model=EndpointStats, responses=_NOT_FOUND)
async def stats(
    endpoint: EndpointDep,
    session: SessionDep,
    since: Annotated[UtcDatetime | None, Query(description="Messages created from this time")] = None,
    until: Annotated[UtcDatetime | None, Query(description="... up to this time")] = None,
) -> EndpointStats:
    """The endpoint's deliveries by state; ``sending`` is a delivery a worker is sending right now."""
    return EndpointStats(**await endpoint_stats(session, endpoint, since, until))


@router.get("/{endpoint_id}/attempt-stats", response_model=EndpointAttemptStats, responses=_NOT_FOUND)
async def get_attempt_stats(
    endpoint: EndpointDep,
    session: SessionDep,
    since: Annotated[
        UtcDatetime | None, Query(description="Attempts from this time (rounded down to the hour)")
    ] = None,
    until: Annotated[UtcDatetime | None, Query(description="... up to this time (its hour included)")] = None,
) -> EndpointAttemptStats:
    """Attempts made to the endpoint by outcome, counted per hour as they are recorded."""
    return EndpointAttemptStats(**await attempt_stats(session, endpoint, since, until))
