"""Accepting a message: stored (with whatever else this process is writing), announced on the
live stream and handed to the dispatcher. The route and its hot path (``messages.hot_route``)
both call ``accept``."""

from __future__ import annotations

from hookpost.applications.service import find_or_create_application
from hookpost.event_types.service import check_payload
from hookpost.kit.errors import NotFound
from hookpost.messages.schemas import MessageIn
from hookpost.messages.service import create_message, message_out
from hookpost.messages.writer import Accepted, NewMessage, message_writer
from hookpost.observability import tracing
from hookpost.state import AppState
from hookpost.stream.events import message_created


async def accept(state: AppState, app_id: str, data: MessageIn, idempotency_key: str | None) -> Accepted:
    """Store a new message (or find the original of a repeat), then announce and queue it."""
    if state.settings.validate_payloads:
        async with state.sessionmaker() as session:
            await check_payload(session, data.event_type, data.payload)
    # Tracing on: the message is stored with this span's traceparent, and its deliveries are
    # dispatched under it, so every attempt, however late, joins the request's trace.
    with tracing.span("hookpost.message.commit") as span:
        traceparent = None if span is None else span.traceparent
        accepted = await _store(state, app_id, data, idempotency_key, traceparent)
        if span is not None:
            span.set("hookpost.msg_id", accepted.message.id)
            span.set("hookpost.app_id", accepted.app_id)
            span.set("hookpost.deliveries", len(accepted.delivery_ids))
            span.set("hookpost.repeat", not accepted.created)
        if accepted.created:  # committed by now; a repeat made nothing new
            message = accepted.message
            state.events.publish(
                message_created(accepted.app_id, message.id, message.event_type, message.event_id, message.timestamp)
            )
        state.dispatcher.submit(accepted.delivery_ids)
    return accepted


async def _store(
    state: AppState, app_id: str, data: MessageIn, idempotency_key: str | None, traceparent: str | None
) -> Accepted:
    # Written together with whatever other requests this process has in flight.
    writer = message_writer(state.sessionmaker, state.settings, state.batch_sessionmaker)
    accepted = await writer.submit(NewMessage(app_id, data, idempotency_key, traceparent))
    if accepted is not None:
        return accepted
    # No such application: create it if asked to, in a transaction of its own.
    async with state.sessionmaker() as session:
        application = await find_or_create_application(session, app_id, data.application)
        if application is None:
            raise NotFound("Application not found (send `application` to create it with the message)")
        stored = await create_message(session, application, data, idempotency_key, state.settings, traceparent)
        await session.commit()
    return Accepted(message_out(stored.message), stored.delivery_ids, application.id, stored.created)
