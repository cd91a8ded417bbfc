"""Attempts: what happened on each try, per message and per endpoint; and resending."""

from typing import Annotated

from fastapi import APIRouter, Query, status

from hookpost.api.dependencies import SessionDep, StateDep
from hookpost.api.errors import NotFound, error_responses
from hookpost.applications.service import ApplicationDep
from hookpost.attempts.schemas import MessageAttemptOut, MessageEndpointOut, message_endpoint_out, status_text
from hookpost.attempts.service import attempt_page, destination_page, find_attempt, resend_delivery
from hookpost.endpoints.service import EndpointDep
from hookpost.kit.filters import After, Before
from hookpost.kit.pagination import PageDep
from hookpost.kit.schemas import ListResponse, Schema
from hookpost.messages.service import MessageDep
from hookpost.storage.models import Attempt, MessageStatus

router = APIRouter(prefix="/app/{app_id}", tags=["Message Attempt"])
_NOT_FOUND = error_responses(NotFound)


def attempt_out(attempt: Attempt) -> MessageAttemptOut:
    return MessageAttemptOut(
        id=attempt.id,
        msg_id=attempt.msg_id,
        endpoint_id=attempt.endpoint_id,
        url=attempt.url,
        response=attempt.response,
        response_status_code=attempt.response_status_code,
        response_duration_ms=attempt.response_duration_ms,
        status=MessageStatus(attempt.status),
        status_text=status_text(attempt.status),
        trigger_type=attempt.trigger_type,
        timestamp=attempt.created_at,
        error=attempt.error,
    )


StatusFilter = Annotated[MessageStatus | None, Query(alias="status", description="Only attempts with this status")]


@router.get("/attempt/msg/{msg_id}", response_model=ListResponse[MessageAttemptOut], responses=_NOT_FOUND)
async def list_by_message(
    message: MessageDep,
    session: SessionDep,
    page: PageDep,
    status_filter: StatusFilter = None,
    endpoint_id: str | None = None,
    before: Before = None,
    after: After = None,
) -> ListResponse[MessageAttemptOut]:
    """Newest first."""
    result = await attempt_page(
        session, page, msg_id=message.id, endpoint_id=endpoint_id, status=status_filter, before=before, after=after
    )
    return result.response(attempt_out)


@router.get("/attempt/endpoint/{endpoint_id}", response_model=ListResponse[MessageAttemptOut], responses=_NOT_FOUND)
async def list_by_endpoint(
    endpoint: EndpointDep,
    session: SessionDep,
    page: PageDep,
    status_filter: StatusFilter = None,
    before: Before = None,
    after: After = None,
) -> ListResponse[MessageAttemptOut]:
    """Newest first."""
    result = await attempt_page(
        session, page, endpoint_id=endpoint.id, status=status_filter, before=before, after=after
    )
    return result.response(attempt_out)


@router.get("/msg/{msg_id}/attempt/{attempt_id}", response_model=MessageAttemptOut, responses=_NOT_FOUND)
async def get(message: MessageDep, attempt_id: str, session: SessionDep) -> MessageAttemptOut:
    attempt = await find_attempt(session, message, attempt_id)
    if attempt is None:
        raise NotFound("Attempt not found")
    return attempt_out(attempt)


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
