from typing import Annotated

from fastapi import APIRouter, Header, Query, status

from hookpost.api.dependencies import SessionDep, StateDep
from hookpost.api.errors import PayloadTooLarge, error_responses
from hookpost.api.query import After, Before, Channel, PageDep, Tag, comma_separated
from hookpost.applications.dependencies import ApplicationDep
from hookpost.kit.errors import NotFound
from hookpost.kit.schemas import ListResponse
from hookpost.kit.validation import Names
from hookpost.messages.dependencies import MessageDep
from hookpost.messages.ingest import accept
from hookpost.messages.schemas import MessageIn, MessageOut, MessagePrecheckIn, MessagePrecheckOut
from hookpost.messages.service import (
    MessageFilters,
    message_out,
    message_page,
    would_deliver,
)
from hookpost.purge.service import expunge_messages

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


@router.post("/precheck/active", response_model=MessagePrecheckOut, responses=error_responses(NotFound))
async def precheck(application: ApplicationDep, data: MessagePrecheckIn, session: SessionDep) -> MessagePrecheckOut:
    """Whether a message of this event type (and channels) would reach any enabled endpoint."""
    return MessagePrecheckOut(active=await would_deliver(session, application, data.event_type, data.channels))


@router.get("/{msg_id}", response_model=MessageOut, responses=error_responses(NotFound))
async def get(message: MessageDep, with_content: WithContent = True) -> MessageOut:
    return message_out(message, with_content=with_content)


@router.delete("/{msg_id}/content", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(NotFound))
async def expunge(message: MessageDep, session: SessionDep) -> None:
    """Delete the message's payload (say it held something it should not); what was sent when
    stays on record. Deliveries not yet made are canceled, and the message cannot be resent."""
    await expunge_messages(session, [message.id])
