"""What the console's and the app portal's pages show of an application and a message: the same
reads for both fronts (each adds what only it shows), so the two never drift apart.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.attempts.schemas import status_text
from hookpost.attempts.service import attempt_page, delivery_statuses, destination_page, last_attempts
from hookpost.background_tasks.kinds import RECOVER
from hookpost.background_tasks.service import find_background_task
from hookpost.console.web import MessageLogQuery, filter_time, form_names
from hookpost.endpoints.service import endpoint_page
from hookpost.event_types.service import event_type_page
from hookpost.kit.pagination import Ordering, PageParams
from hookpost.messages.service import MessageFilters, message_page
from hookpost.storage.models import Application, BackgroundTask, Endpoint, EventType, Message

PAGE_SIZE = 25
CATALOGUE_SIZE = 250  # event types offered in an endpoint form
SHOWN_AT_ONCE = 100  # endpoints of an application, destinations and attempts of a message


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
