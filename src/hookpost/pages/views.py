"""What the console's and the app portal's pages show of an application, an endpoint and a message,
and the actions whose steps are the same on both: one copy for both fronts (each adds what only it
shows, and answers in its own way), so the two never drift apart.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Any

from fastapi import Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.api.dependencies import SessionDep
from hookpost.applications.dependencies import ApplicationDep
from hookpost.attempts.schemas import status_text
from hookpost.attempts.service import (
    AttemptFilters,
    attempt_page,
    delivery_statuses,
    destination_page,
    last_attempts,
    resend_delivery,
)
from hookpost.background_tasks.kinds import RECOVER
from hookpost.background_tasks.service import find_background_task
from hookpost.endpoints.dependencies import EndpointDep
from hookpost.endpoints.schemas import EndpointIn, EventExampleIn, RecoverIn
from hookpost.endpoints.service import create_endpoint, endpoint_page, send_example, start_recover
from hookpost.event_types.service import event_type_page
from hookpost.kit.pagination import Ordering, PageParams
from hookpost.messages.dependencies import MessageDep
from hookpost.messages.service import MessageFilters, message_page
from hookpost.pages.forms import EndpointForm, Iterator, MessageLogDep, MessageLogQuery, filter_time, form_names, notice
from hookpost.state import AppState
from hookpost.storage.models import Application, BackgroundTask, Endpoint, EventType, Message, MessageStatus

PAGE_SIZE = 25
CATALOGUE_SIZE = 250  # event types offered in an endpoint form
SHOWN_AT_ONCE = 100  # endpoints of an application, destinations and attempts of a message
STATUSES = {status.name.lower(): status for status in MessageStatus}  # an attempt filter's choices

Done = Annotated[str | None, Query(max_length=32)]  # ?done=... after a form: which notice to show


async def catalogue(session: AsyncSession, feature_flags: frozenset[str] | None = None) -> list[EventType]:
    """The event types an endpoint form offers (GET /api/v1/event-type, with the caller's feature flags)."""
    result = await event_type_page(
        session, PageParams(CATALOGUE_SIZE, None), Ordering.ASCENDING, feature_flags=feature_flags
    )
    return list(result.items)


async def application_view(session: AsyncSession, application: Application, query: MessageLogQuery) -> dict[str, Any]:
    """Its endpoints (GET .../endpoint) with their health, and its messages (GET .../msg) with filters."""
    after_time, before_time = filter_time(query.after), filter_time(query.before)
    endpoints = await endpoint_page(session, application, PageParams(SHOWN_AT_ONCE, None), Ordering.ASCENDING)
    wanted = MessageFilters(form_names(query.event_type), before=before_time, after=after_time)
    messages = await message_page(session, application, PageParams(PAGE_SIZE, query.iterator), wanted)
    return {
        "app": application,
        "endpoints": endpoints,
        "last": await last_attempts(session, [endpoint.id for endpoint in endpoints.items]),
        "messages": messages,
        "statuses": await delivery_statuses(session, [message.id for message in messages.items]),
        "filters": {"event_type": query.event_type, "after": after_time, "before": before_time},
        "status_text": status_text,
    }


async def message_view(session: AsyncSession, application: Application, message: Message) -> dict[str, Any]:
    """The message (GET .../msg/{id}), its destinations (GET .../msg/{id}/endpoint), its attempts,
    and the endpoints it may be resent to."""
    destinations, endpoints = await destination_page(session, message, PageParams(SHOWN_AT_ONCE, None))
    all_endpoints = await endpoint_page(session, application, PageParams(SHOWN_AT_ONCE, None), Ordering.ASCENDING)
    return {
        "app": application,
        "message": message,
        "destinations": destinations.items,
        "endpoints": endpoints,
        "all_endpoints": all_endpoints.items,
        "attempts": await attempt_page(session, PageParams(SHOWN_AT_ONCE, None), msg_id=message.id),
        "status_text": status_text,
    }


async def recovery_of(session: AsyncSession, endpoint: Endpoint, task_id: str | None) -> BackgroundTask | None:
    """The recover task ``task_id`` (from the page's address, after its form) if it recovers this
    endpoint: a page never shows another endpoint's task, whoever may read this one's page."""
    task = await find_background_task(session, task_id) if task_id else None
    if task is None or task.kind != RECOVER or task.data.get("endpointId") != endpoint.id:
        return None
    return task


# --- Each page's common part, as a dependency: the routes add what only their front shows ------


async def application_page_parts(
    application: ApplicationDep, session: SessionDep, query: MessageLogDep, done: Done = None
) -> dict[str, Any]:
    """An application's page: its endpoints, its filtered message log, the notice after a form."""
    return await application_view(session, application, query) | {"notice": notice(done)}


async def endpoint_page_parts(
    application: ApplicationDep,
    endpoint: EndpointDep,
    session: SessionDep,
    status: Annotated[str, Query(max_length=16)] = "",
    iterator: Iterator = None,
    task: Annotated[str | None, Query(max_length=64)] = None,
    done: Done = None,
) -> dict[str, Any]:
    """An endpoint's page: its attempts (filtered by ``status``), a recovery's progress, the notice."""
    filters = AttemptFilters(status=STATUSES.get(status))
    attempts = await attempt_page(session, PageParams(PAGE_SIZE, iterator), endpoint_id=endpoint.id, filters=filters)
    return {
        "app": application,
        "endpoint": endpoint,
        "attempts": attempts,
        "recovery": await recovery_of(session, endpoint, task),
        "status": status if status in STATUSES else "",
        "statuses": list(STATUSES),
        "notice": notice(done),
        "status_text": status_text,
    }


async def message_page_parts(
    application: ApplicationDep, message: MessageDep, session: SessionDep, done: Done = None
) -> dict[str, Any]:
    """A message's page: :func:`message_view` and the notice after a form."""
    return await message_view(session, application, message) | {"notice": notice(done)}


ApplicationPageDep = Annotated[dict[str, Any], Depends(application_page_parts)]
EndpointPageDep = Annotated[dict[str, Any], Depends(endpoint_page_parts)]
MessagePageDep = Annotated[dict[str, Any], Depends(message_page_parts)]


# --- Actions whose steps are the same on both fronts ---------------------------------------


def endpoint_path(pages_root: str, endpoint: Endpoint) -> str:
    """An endpoint's page on a front (``/console`` or ``/portal``)."""
    return f"{pages_root}/app/{endpoint.app_id}/endpoint/{endpoint.id}"


async def recover_from_form(session: AsyncSession, endpoint: Endpoint, since: str, pages_root: str) -> str:
    """POST .../endpoint/{id}/recover with the form's ``since``: re-send, in the background, what
    failed since then. Answers with the endpoint's page that follows the task."""
    data = RecoverIn.model_validate({"since": since})
    task = start_recover(session, endpoint, data.since, data.until)
    await session.flush()
    return endpoint_path(pages_root, endpoint) + f"?done=recovering&task={task.id}"


async def add_endpoint(
    session: AsyncSession,
    application: Application,
    form: EndpointForm,
    state: AppState,
    *,
    feature_flags: Collection[str] | None,
) -> Endpoint:
    """POST /api/v1/app/{app_id}/endpoint, from an endpoint form (no event type ticked: all of them)."""
    data = EndpointIn(url=form.url, description=form.description, event_types=form.event_types or None)
    return await create_endpoint(session, application, data, state.settings, feature_flags=feature_flags)


async def send_example_of(session: AsyncSession, endpoint: Endpoint, event_type: str, state: AppState) -> None:
    """POST .../endpoint/{id}/send-example: the event type's schema example, to this endpoint alone."""
    example = EventExampleIn(event_type=event_type)
    await send_example(session, endpoint, example, state.settings, events=state.events, dispatcher=state.dispatcher)


async def resend_now(session: AsyncSession, message: Message, endpoint: Endpoint, state: AppState) -> None:
    """POST .../msg/{id}/endpoint/{endpoint_id}/resend, handed to this process's dispatcher at once."""
    delivery_id = await resend_delivery(session, message, endpoint, state.settings)
    state.dispatcher.submit([delivery_id])
