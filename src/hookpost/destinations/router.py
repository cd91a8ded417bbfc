"""``/app/{app_id}/destination``: Svix's destination API (create, list, get, upsert, patch,
rotate the signing secret, delete)."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from hookpost.api.dependencies import SessionDep, StateDep
from hookpost.api.errors import error_responses
from hookpost.api.query import After, Channel, PageDep
from hookpost.applications.dependencies import ApplicationDep
from hookpost.auth.policy import PrincipalDep
from hookpost.delivery.signing import shown_key
from hookpost.destinations.dependencies import DestinationDep
from hookpost.destinations.poller import PollPage, consumer_poll, consumer_seek, find_poller, poll
from hookpost.destinations.position import start_position
from hookpost.destinations.schemas import (
    ConsumerSeekIn,
    ConsumerSeekOut,
    DestinationAttemptOut,
    DestinationIn,
    DestinationOut,
    DestinationPatch,
    DestinationSecretRotateOut,
    PollingEndpointOut,
)
from hookpost.destinations.service import (
    create_destination,
    destination_attempt_page,
    destination_page,
    fifo_lease,
    fifo_leases,
    patch_destination,
    rotate_destination_secret,
    shown_config,
    shown_status,
    upsert_destination,
)
from hookpost.endpoints.schemas import EndpointSecretRotateIn
from hookpost.kit.errors import Conflict, NotFound
from hookpost.kit.pagination import MAX_LIMIT, Ordering
from hookpost.kit.schemas import ListResponse
from hookpost.kit.validation import Name
from hookpost.messages.service import message_out
from hookpost.storage.models import Destination, FifoLease

router = APIRouter(prefix="/app/{app_id}/destination", tags=["Destination"])
_NOT_FOUND = error_responses(NotFound)


def destination_out(destination: Destination, lease: FifoLease | None = None) -> DestinationOut:
    shown, reason = shown_status(destination, lease)
    return DestinationOut(
        id=destination.id,
        uid=destination.uid,
        type=destination.type,
        status=shown,
        failure_reason=reason,
        next_retry_at=lease.next_attempt_at if lease is not None and lease.attempt_count else None,
        current_iterator=start_position(destination),
        batch_size=destination.batch_size,
        max_wait_secs=destination.max_wait_secs,
        event_types=destination.event_types,
        channels=destination.channels,
        metadata=destination.metadata_,
        config=shown_config(destination),
        created_at=destination.created_at,
        updated_at=destination.updated_at,
    )


@router.get("", response_model=ListResponse[DestinationOut], responses=_NOT_FOUND)
async def list_destinations(
    application: ApplicationDep, session: SessionDep, page: PageDep, order: Ordering = Ordering.ASCENDING
) -> ListResponse[DestinationOut]:
    result = await destination_page(session, application, page, order)
    leases = await fifo_leases(session, result.items)
    return result.response(lambda destination: destination_out(destination, leases.get(destination.id)))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DestinationOut,
    responses=error_responses(NotFound, Conflict),
)
async def create(
    application: ApplicationDep, data: DestinationIn, session: SessionDep, state: StateDep, principal: PrincipalDep
) -> DestinationOut:
    """Types: pollingEndpoint (served), and fifoEndpoint, rabbitMq, postgres, sqs, amazonS3
    (delivered to in order, in batches; docs/destinations.md says what arrives)."""
    return destination_out(await create_destination(session, application, data, state.settings, principal.held_flags))


@router.get("/{destination_id}", response_model=DestinationOut, responses=_NOT_FOUND)
async def get(destination: DestinationDep, session: SessionDep) -> DestinationOut:
    return destination_out(destination, await fifo_lease(session, destination))


@router.get("/{destination_id}/attempt", response_model=ListResponse[DestinationAttemptOut], responses=_NOT_FOUND)
async def list_attempts(
    destination: DestinationDep, session: SessionDep, page: PageDep
) -> ListResponse[DestinationAttemptOut]:
    """A delivered destination's batch attempts, newest first (Hookpost's own: Svix has no such list)."""
    result = await destination_attempt_page(session, destination, page)
    return result.response(DestinationAttemptOut.model_validate)


@router.put(
    "/{destination_id}",
    response_model=DestinationOut,
    responses=error_responses(NotFound, Conflict) | {201: {"model": DestinationOut, "description": "Created"}},
)
async def upsert(
    destination_id: str,
    application: ApplicationDep,
    data: DestinationIn,
    session: SessionDep,
    state: StateDep,
    principal: PrincipalDep,
    response: Response,
) -> DestinationOut:
    """Replace the destination, or create it with the path as its uid."""
    destination, created = await upsert_destination(
        session, application, destination_id, data, state.settings, principal.held_flags
    )
    if created:
        response.status_code = status.HTTP_201_CREATED
    return destination_out(destination, await fifo_lease(session, destination))


@router.patch("/{destination_id}", response_model=DestinationOut, responses=error_responses(NotFound, Conflict))
async def patch(
    destination: DestinationDep, data: DestinationPatch, session: SessionDep, state: StateDep, principal: PrincipalDep
) -> DestinationOut:
    patched = await patch_destination(session, destination, data, state.settings, principal.held_flags)
    return destination_out(patched, await fifo_lease(session, patched))


@router.delete("/{destination_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def delete(destination: DestinationDep, session: SessionDep) -> None:
    await session.delete(destination)


@router.post(
    "/{destination_id}/secret/rotate",
    response_model=DestinationSecretRotateOut,
    responses=error_responses(NotFound, Conflict),
)
async def rotate(
    destination: DestinationDep, data: EndpointSecretRotateIn, session: SessionDep, state: StateDep
) -> DestinationSecretRotateOut:
    """A fifoEndpoint's new signing secret; the previous one keeps signing for the grace period (24 h)."""
    key = rotate_destination_secret(destination, state.settings, data.key, data.grace_period_seconds)
    await session.flush()
    return DestinationSecretRotateOut(key=shown_key(key))


# --- message.poller: /app/{app_id}/poller/{sink_id} ---------------------------------------

poller_router = APIRouter(prefix="/app/{app_id}/poller/{sink_id}", tags=["Message Poller"])
_POLLER_ERRORS = error_responses(NotFound, Conflict)

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Messages per page")]
Iterator = Annotated[str | None, Query(max_length=64, description="The iterator of a previous answer")]
SinkId = Annotated[str, Path(description="The polling endpoint's id or uid")]
ConsumerId = Annotated[Name, Path(description="The consumer's name, chosen by the consumer")]


def page_out(page: PollPage) -> PollingEndpointOut:
    return PollingEndpointOut(
        data=[message_out(message) for message in page.messages], iterator=page.iterator, done=page.done
    )


@poller_router.get("", response_model=PollingEndpointOut, responses=_POLLER_ERRORS)
async def poll_messages(
    application: ApplicationDep,
    sink_id: SinkId,
    session: SessionDep,
    state: StateDep,
    after: After = None,
    channel: Channel = None,
    event_type: Annotated[str | None, Query(max_length=256, description="Only messages of this event type")] = None,
    limit: Limit = 50,
    iterator: Iterator = None,
) -> PollingEndpointOut:
    """The application's messages the polling endpoint wants, oldest first, from ``iterator``
    (else from ``after``, else from the endpoint's creation). Reading marks nothing: the same
    iterator reads the same messages again."""
    destination = await find_poller(session, application, sink_id)
    page = await poll(
        session,
        destination,
        state.settings,
        limit=limit,
        iterator=iterator,
        after=after,
        event_type=event_type,
        channel=channel,
    )
    return page_out(page)


@poller_router.get("/consumer/{consumer_id}", response_model=PollingEndpointOut, responses=_POLLER_ERRORS)
async def poll_as_consumer(
    application: ApplicationDep,
    sink_id: SinkId,
    consumer_id: ConsumerId,
    session: SessionDep,
    state: StateDep,
    limit: Limit = 50,
    iterator: Iterator = None,
) -> PollingEndpointOut:
    """From where this consumer's last answer ended (or from ``iterator``); the server keeps
    the consumer's position at the end of each answer. To read an answer again that never
    arrived, pass back the iterator of the last answer processed."""
    destination = await find_poller(session, application, sink_id)
    page = await consumer_poll(session, destination, consumer_id, state.settings, limit=limit, iterator=iterator)
    return page_out(page)


@poller_router.post("/consumer/{consumer_id}/seek", response_model=ConsumerSeekOut, responses=_POLLER_ERRORS)
async def seek_consumer(
    application: ApplicationDep, sink_id: SinkId, consumer_id: ConsumerId, data: ConsumerSeekIn, session: SessionDep
) -> ConsumerSeekOut:
    """Move the consumer: it reads next the messages accepted from ``after`` on."""
    destination = await find_poller(session, application, sink_id)
    return ConsumerSeekOut(iterator=await consumer_seek(session, destination, consumer_id, data.after))
