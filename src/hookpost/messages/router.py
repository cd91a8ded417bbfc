from typing import Annotated

from fastapi import APIRouter, Header, Query, status

from hookpost.api.dependencies import SessionDep, StateDep
from hookpost.api.errors import PayloadTooLarge, error_responses
from hookpost.api.lifespan import AppState
from hookpost.api.query import After, Before, Channel, PageDep, Tag, comma_separated
from hookpost.applications.dependencies import ApplicationDep
from hookpost.applications.service import find_or_create_application
from hookpost.event_types.service import check_payload
from hookpost.kit.errors import NotFound
from hookpost.kit.schemas import ListResponse
from hookpost.kit.validation import Names
from hookpost.messages.dependencies import MessageDep
from hookpost.messages.schemas import MessageIn, MessageOut
from hookpost.messages.service import (
    Accepted,
    MessageFilters,
    NewMessage,
    create_message,
    message_out,
    message_page,
    message_writer,
)
from hookpost.purge.service import expunge_messages
from hookpost.stream.events import message_created

router = APIRouter(prefix="/app/{app_id}/msg", tags=["Message"])

WithContent = Annotated[bool, Query(description="Include the payload")]


@router.get("", response_model=ListResponse[MessageOut], responses=error_responses(NotFound))
async def list_messages(
    application: ApplicationDep,
    session: SessionDep,
    page: PageDep,
    event_types: Annotated[list[Names] | None, Query(description="Only these event types")] = None,
    channel: Channel = None,
    tag: Tag = None,
    before: Before = None,
    after: After = None,
    with_content: WithContent = True,
) -> ListResponse[MessageOut]:
    """Newest first."""
    filters = MessageFilters(comma_separated(event_types), channel, tag, before, after)
    result = await message_page(session, application, page, filters)
    return result.response(lambda message: message_out(message, with_content=with_content))


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MessageOut,
    responses=error_responses(NotFound, PayloadTooLarge),
)
async def create(
    app_id: str,
    data: MessageIn,
    state: StateDep,
    idempotency_key: Annotated[
        str | None, Header(max_length=256, description="A repeat with the same key returns the original message")
    ] = None,
    with_content: WithContent = True,
) -> MessageOut:
    """Accepted once the message and its deliveries are durably stored; delivery follows."""
    accepted = await accept(state, app_id, data, idempotency_key)
    return accepted.out(with_content=with_content)


async def accept(state: AppState, app_id: str, data: MessageIn, idempotency_key: str | None) -> Accepted:
    """Store a new message (or find the original of a repeat), then announce and queue it: the
    route's work, shared with its hot path (``messages.hot_route``)."""
    if state.settings.validate_payloads:
        async with state.sessionmaker() as session:
            await check_payload(session, data.event_type, data.payload)
    # Written together with whatever other requests this process has in flight.
    writer = message_writer(state.sessionmaker, state.settings, state.batch_sessionmaker)
    accepted = await writer.submit(NewMessage(app_id, data, idempotency_key))
    if accepted is None:
        # No such application: create it if asked to, in a transaction of its own.
        async with state.sessionmaker() as session:
            application = await find_or_create_application(session, app_id, data.application)
            if application is None:
                raise NotFound("Application not found (send `application` to create it with the message)")
            stored = await create_message(session, application, data, idempotency_key, state.settings)
            await session.commit()
        accepted = Accepted(message_out(stored.message), stored.delivery_ids, application.id, stored.created)
    if accepted.created:  # committed by now; a repeat made nothing new
        message = accepted.message
        state.events.publish(
            message_created(accepted.app_id, message.id, message.event_type, message.event_id, message.timestamp)
        )
    state.dispatcher.submit(accepted.delivery_ids)
    return accepted


@router.get("/{msg_id}", response_model=MessageOut, responses=error_responses(NotFound))
async def get(message: MessageDep, with_content: WithContent = True) -> MessageOut:
    return message_out(message, with_content=with_content)


@router.delete("/{msg_id}/content", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(NotFound))
async def expunge(message: MessageDep, session: SessionDep) -> None:
    """Delete the message's payload (say it held something it should not); what was sent when
    stays on record. Deliveries not yet made are canceled, and the message cannot be resent."""
    await expunge_messages(session, [message.id])
