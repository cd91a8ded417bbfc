"""Messages: a message stored with one delivery per matching endpoint, one at a time, and the
reads and filters the API and the pages share (the batched hot path is ``messages.writer``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVarTuple

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from hookpost.kit.filters import json_list_has
from hookpost.kit.ids import ids_made_after, ids_made_before, new_id
from hookpost.kit.pagination import Ordering, Page, PageParams, paginate
from hookpost.kit.time import utcnow
from hookpost.messages.schemas import MessageIn, MessageOut
from hookpost.messages.statements import NewMessageRow
from hookpost.observability.metrics import MESSAGES_ACCEPTED
from hookpost.settings import Settings
from hookpost.storage.models import Application, Delivery, Endpoint, Message


def message_out(message: Message, *, with_content: bool = True) -> MessageOut:
    payload: dict[str, Any] = json.loads(message.payload) if with_content and message.payload else {}
    return MessageOut(
        id=message.id,
        event_type=message.event_type,
        event_id=message.event_id,
        payload=payload,
        channels=message.channels,
        tags=message.tags,
        timestamp=message.created_at,
        deliver_at=message.deliver_at,
    )


@dataclass(frozen=True)
class Schedule:
    """When a new message's deliveries come due, and whether the API publishes them now."""

    due: datetime
    queued_until: datetime | None
    publish: bool


def delivery_schedule(data: MessageIn, now: datetime, settings: Settings) -> Schedule:
    if data.deliver_at is not None and data.deliver_at > now:
        # Left to the scheduler, which queues a delivery once it is due: nothing to publish now.
        return Schedule(data.deliver_at, None, publish=False)
    # Marked queued: the API publishes them right after the commit; the scheduler is the
    # safety net should that publish never happen.
    return Schedule(now, now + timedelta(seconds=settings.requeue_after), publish=True)


def message_row(
    msg_id: str, app_id: str, idempotency_key: str | None, data: MessageIn, now: datetime, traceparent: str | None
) -> NewMessageRow:
    """A new message's row, as both the single and the batched writes store it."""
    retention = data.payload_retention()
    return NewMessageRow(
        id=msg_id,
        app_id=app_id,
        idempotency_key=idempotency_key,
        event_id=data.event_id,
        event_type=data.event_type,
        payload=data.payload_json,
        channels=data.channels,
        tags=data.tags,
        created_at=now,
        deliver_at=data.deliver_at,
        payload_expires_at=None if retention is None else now + retention,
        traceparent=traceparent,
    )


Row = TypeVarTuple("Row")


@dataclass(frozen=True)
class MessageFilters:
    """Which messages a list keeps (Svix's message list parameters, shared by the lists of
    an application's messages and of those owed to an endpoint)."""

    event_types: Sequence[str] = ()
    channel: str | None = None
    tag: str | None = None
    before: datetime | None = None
    after: datetime | None = None

    def apply(self, query: Select[*Row]) -> Select[*Row]:
        """``query`` (which selects from or joins ``Message``) narrowed to these messages."""
        if self.event_types:
            query = query.where(Message.event_type.in_(self.event_types))
        if self.channel is not None:
            query = query.where(json_list_has(Message.channels, self.channel))
        if self.tag is not None:
            query = query.where(json_list_has(Message.tags, self.tag))
        if self.before is not None:
            query = query.where(Message.created_at < self.before)
        if self.after is not None:
            query = query.where(Message.created_at > self.after)
        return query.where(*self.id_bounds(Message.id))

    def id_bounds(self, msg_id: InstrumentedAttribute[str]) -> list[ColumnElement[bool]]:
        """``before`` and ``after`` as bounds on a column holding the message's id (ids begin
        with their time, kit/ids.py), added to the exact ``created_at`` conditions: the scan
        starts and stops near the window whatever the history behind it, and on PostgreSQL
        only the window's weeks are read (message, delivery and attempt are partitioned on it)."""
        bounds = []
        if self.before is not None:
            bounds.append(msg_id < ids_made_before("msg", self.before))
        if self.after is not None:
            bounds.append(msg_id >= ids_made_after("msg", self.after))
        return bounds


async def message_page(
    session: AsyncSession, application: Application, page: PageParams, filters: MessageFilters = MessageFilters()
) -> Page[Message]:
    """A page of the application's messages, newest first."""
    query = filters.apply(select(Message).where(Message.app_id == application.id))
    return await paginate(session, query, Message.id, page, Ordering.DESCENDING)


async def find_message(session: AsyncSession, application: Application, msg_id: str) -> Message | None:
    """The application's message with this id or eventId."""
    return await session.scalar(
        select(Message).where(Message.app_id == application.id, or_(Message.id == msg_id, Message.event_id == msg_id))
    )


def filter_wants(
    event_types: list[str] | None, channels: list[str] | None, event_type: str, wanted: Sequence[str] | None
) -> bool:
    if event_types and event_type not in event_types:
        return False
    return not channels or bool(set(channels) & set(wanted or ()))


def endpoint_wants(endpoint: Endpoint, event_type: str, channels: Sequence[str] | None) -> bool:
    return filter_wants(endpoint.event_types, endpoint.channels, event_type, channels)


async def would_deliver(
    session: AsyncSession, application: Application, event_type: str, channels: Sequence[str] | None
) -> bool:
    """Whether a message of this event type and channels would reach an endpoint: the choice
    ingest makes (enabled endpoints, each one's filter), without storing anything."""
    filters = await session.execute(
        select(Endpoint.event_types, Endpoint.channels).where(
            Endpoint.app_id == application.id, Endpoint.disabled.is_(False)
        )
    )
    return any(filter_wants(event_types, wanted, event_type, channels) for event_types, wanted in filters)


async def find_duplicate(
    session: AsyncSession, application: Application, data: MessageIn, idempotency_key: str | None
) -> Message | None:
    conditions = []
    if idempotency_key is not None:
        conditions.append(Message.idempotency_key == idempotency_key)
    if data.event_id is not None:
        conditions.append(Message.event_id == data.event_id)
    if not conditions:
        return None
    return await session.scalar(select(Message).where(Message.app_id == application.id, or_(*conditions)).limit(1))


class Stored(NamedTuple):
    message: Message
    delivery_ids: list[str]  # to publish now (none for a message scheduled later)
    created: bool  # False for a repeat


async def create_message(
    session: AsyncSession,
    application: Application,
    data: MessageIn,
    idempotency_key: str | None,
    settings: Settings,
    traceparent: str | None = None,
) -> Stored:
    """Store the message and its deliveries in one transaction, committed on return.

    Returns the message and the ids of the deliveries to queue; a repeat (same
    idempotency key or eventId) returns the original message and nothing to queue.
    """
    duplicate = await find_duplicate(session, application, data, idempotency_key)
    if duplicate is not None:
        return Stored(duplicate, [], created=False)

    now = utcnow()
    message = Message(**message_row(new_id("msg"), application.id, idempotency_key, data, now, traceparent)._asdict())
    endpoints = await session.scalars(
        select(Endpoint).where(Endpoint.app_id == application.id, Endpoint.disabled.is_(False))
    )
    schedule = delivery_schedule(data, now, settings)
    deliveries = [
        Delivery(
            id=new_id("dlv"),
            app_id=application.id,
            msg_id=message.id,
            endpoint_id=endpoint.id,
            next_attempt_at=schedule.due,
            queued_until=schedule.queued_until,
            created_at=now,
        )
        for endpoint in endpoints
        if endpoint_wants(endpoint, data.event_type, data.channels)
    ]
    try:
        session.add(message)
        await session.flush()  # the message row first: deliveries reference it
        session.add_all(deliveries)
        await session.commit()
    except IntegrityError:
        # A concurrent request with the same key or eventId won the race: answer with its message.
        await session.rollback()
        duplicate = await find_duplicate(session, application, data, idempotency_key)
        if duplicate is None:
            raise
        return Stored(duplicate, [], created=False)
    MESSAGES_ACCEPTED.inc()
    return Stored(message, [delivery.id for delivery in deliveries] if schedule.publish else [], created=True)
