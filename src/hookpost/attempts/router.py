"""Attempts: what happened on each try, per message and per endpoint; and resending."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from hookpost.api.dependencies import SessionDep, StateDep
from hookpost.api.errors import error_responses
from hookpost.api.query import After, Before, Channel, PageDep, Tag, comma_separated
from hookpost.applications.dependencies import ApplicationDep
from hookpost.attempts.schemas import (
    EndpointMessageOut,
    MessageAttemptOut,
    MessageEndpointOut,
    StatusCodeClass,
    message_endpoint_out,
    status_text,
)
from hookpost.attempts.service import (
    AttemptFilters,
    attempt_page,
    attempted_message_page,
    destination_page,
    find_attempt,
    messages_by_id,
    resend_delivery,
)
from hookpost.endpoints.dependencies import EndpointDep
from hookpost.kit.errors import NotFound
from hookpost.kit.schemas import ListResponse, Schema
from hookpost.kit.time import as_utc, utcnow
from hookpost.kit.validation import Names
from hookpost.messages.dependencies import MessageDep
from hookpost.messages.schemas import MessageOut
from hookpost.messages.service import MessageFilters, message_out
from hookpost.storage.models import Attempt, Delivery, MessageStatus

router = APIRouter(prefix="/app/{app_id}", tags=["Message Attempt"])
_NOT_FOUND = error_responses(NotFound)


def attempt_out(
    attempt: Attempt, *, with_content: bool = True, expanded_statuses: bool = True, msg: MessageOut | None = None
) -> MessageAttemptOut:
    status = MessageStatus(attempt.status)
    if status is MessageStatus.CANCELED and not expanded_statuses:
        status = MessageStatus.SUCCESS  # as Svix answers clients that predate the canceled status
    return MessageAttemptOut(
        id=attempt.id,
        msg_id=attempt.msg_id,
        endpoint_id=attempt.endpoint_id,
        url=attempt.url,
        response=attempt.response if with_content else "",
        response_status_code=attempt.response_status_code,
        response_duration_ms=attempt.response_duration_ms,
        status=status,
        status_text=status_text(status),
        trigger_type=attempt.trigger_type,
        timestamp=attempt.created_at,
        error=attempt.error,
        msg=msg,
    )


@dataclass(frozen=True)
class AttemptListParams:
    """The query parameters both attempt lists take (Svix's names): which attempts, and how shown."""

    filters: AttemptFilters
    with_content: bool
    with_msg: bool
    expanded_statuses: bool


async def attempt_list_params(
    status_filter: Annotated[
        MessageStatus | None, Query(alias="status", description="Only attempts with this status")
    ] = None,
    status_code_class: Annotated[
        StatusCodeClass | None, Query(description="Only responses of this class: 0 (none), 100, 200 ... 500")
    ] = None,
    event_types: Annotated[list[Names] | None, Query(description="Only attempts of messages of these types")] = None,
    channel: Channel = None,
    tag: Tag = None,
    before: Before = None,
    after: After = None,
    with_content: Annotated[bool, Query(description="Include the response body")] = True,
    with_msg: Annotated[bool, Query(description="Include the message (without its payload)")] = False,
    expanded_statuses: Annotated[
        bool, Query(description="Show canceled (4) as such; otherwise as success (0), as Svix does")
    ] = False,
) -> AttemptListParams:
    filters = AttemptFilters(
        status_filter, status_code_class, comma_separated(event_types), channel, tag, before, after
    )
    return AttemptListParams(filters, with_content, with_msg, expanded_statuses)


AttemptListParamsDep = Annotated[AttemptListParams, Depends(attempt_list_params)]


async def _attempt_list(
    session: SessionDep,
    page: PageDep,
    params: AttemptListParams,
    *,
    msg_id: str | None = None,
    endpoint_id: str | None = None,
) -> ListResponse[MessageAttemptOut]:
    result = await attempt_page(session, page, msg_id=msg_id, endpoint_id=endpoint_id, filters=params.filters)
    messages: dict[str, MessageOut] = {}
    if params.with_msg:
        found = await messages_by_id(session, {attempt.msg_id for attempt in result.items})
        messages = {msg_id: message_out(message, with_content=False) for msg_id, message in found.items()}
    return result.response(
        lambda attempt: attempt_out(
            attempt,
            with_content=params.with_content,
            expanded_statuses=params.expanded_statuses,
            msg=messages.get(attempt.msg_id),
        )
    )


@router.get("/attempt/msg/{msg_id}", response_model=ListResponse[MessageAttemptOut], responses=_NOT_FOUND)
async def list_by_message(
    message: MessageDep,
    session: SessionDep,
    page: PageDep,
    params: AttemptListParamsDep,
    endpoint_id: Annotated[str | None, Query(description="Only attempts to this endpoint (id or uid)")] = None,
) -> ListResponse[MessageAttemptOut]:
    """Newest first."""
    return await _attempt_list(session, page, params, msg_id=message.id, endpoint_id=endpoint_id)


@router.get("/attempt/endpoint/{endpoint_id}", response_model=ListResponse[MessageAttemptOut], responses=_NOT_FOUND)
async def list_by_endpoint(
    endpoint: EndpointDep, session: SessionDep, page: PageDep, params: AttemptListParamsDep
) -> ListResponse[MessageAttemptOut]:
    """Newest first."""
    return await _attempt_list(session, page, params, endpoint_id=endpoint.id)


@router.get("/msg/{msg_id}/attempt/{attempt_id}", response_model=MessageAttemptOut, responses=_NOT_FOUND)
async def get(
    message: MessageDep,
    attempt_id: str,
    session: SessionDep,
    expanded_statuses: Annotated[
        bool, Query(description="Show canceled (4) as such; otherwise as success (0), as Svix does")
    ] = False,
) -> MessageAttemptOut:
    attempt = await find_attempt(session, message, attempt_id)
    if attempt is None:
        raise NotFound("Attempt not found")
    return attempt_out(attempt, expanded_statuses=expanded_statuses)


@router.get("/msg/{msg_id}/endpoint", response_model=ListResponse[MessageEndpointOut], responses=_NOT_FOUND)
async def list_destinations(
    message: MessageDep, application: ApplicationDep, session: SessionDep, page: PageDep
) -> ListResponse[MessageEndpointOut]:
    """Every endpoint the message is owed to, with its delivery status and next attempt."""
    result, endpoints = await destination_page(session, message, page)
    return result.response(lambda delivery: message_endpoint_out(endpoints[delivery.endpoint_id], delivery))


class EmptyResponse(Schema):
    """Svix's clients parse every POST answer as JSON: an empty object, not an empty body."""


@router.post(
    "/msg/{msg_id}/endpoint/{endpoint_id}/resend",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EmptyResponse,
    responses=_NOT_FOUND,
)
async def resend(message: MessageDep, endpoint: EndpointDep, session: SessionDep, state: StateDep) -> EmptyResponse:
    """Send the message to the endpoint again now, with a fresh retry schedule."""
    delivery_id = await resend_delivery(session, message, endpoint, state.settings)
    state.dispatcher.submit([delivery_id])
    return EmptyResponse()


@router.delete(
    "/msg/{msg_id}/attempt/{attempt_id}/content", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND
)
async def expunge_response(message: MessageDep, attempt_id: str, session: SessionDep) -> None:
    """Delete the response body the receiver sent for this attempt; the rest stays on record."""
    attempt = await find_attempt(session, message, attempt_id)
    if attempt is None:
        raise NotFound("Attempt not found")
    attempt.response = ""


@router.get("/endpoint/{endpoint_id}/msg", response_model=ListResponse[EndpointMessageOut], responses=_NOT_FOUND)
async def list_attempted_messages(
    endpoint: EndpointDep,
    session: SessionDep,
    page: PageDep,
    status_filter: Annotated[
        MessageStatus | None, Query(alias="status", description="Only messages with this status here")
    ] = None,
    event_types: Annotated[list[Names] | None, Query(description="Only these event types")] = None,
    channel: Channel = None,
    tag: Tag = None,
    before: Before = None,
    after: After = None,
    with_content: Annotated[bool, Query(description="Include the payload")] = True,
    expanded_statuses: Annotated[
        bool, Query(description="Report a delivery being sent right now as sending (4), not pending (1)")
    ] = True,
) -> ListResponse[EndpointMessageOut]:
    """The messages owed to the endpoint, newest first, each with its delivery's status there."""
    now = utcnow()
    filters = MessageFilters(comma_separated(event_types), channel, tag, before, after)
    result, messages = await attempted_message_page(
        session, endpoint, page, filters, status_filter, expanded_statuses=expanded_statuses, now=now
    )

    def out(delivery: Delivery) -> EndpointMessageOut:
        sending = delivery.lease_until is not None and as_utc(delivery.lease_until) > now
        shown = MessageStatus.SENDING if expanded_statuses and sending else MessageStatus(delivery.status)
        return EndpointMessageOut(
            **message_out(messages[delivery.msg_id], with_content=with_content).model_dump(),
            status=shown,
            status_text=status_text(shown),
            next_attempt=delivery.next_attempt_at,
        )

    return result.response(out)
