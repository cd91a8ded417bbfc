"""Messages: accept, store durably with one delivery per matching endpoint, then queue."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVarTuple
from weakref import WeakKeyDictionary

from sqlalchemy import Select, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookpost.applications.service import find_application, names_by_id
from hookpost.kit.batching import GroupCommit
from hookpost.kit.filters import json_list_has
from hookpost.kit.ids import new_id
from hookpost.kit.pagination import Ordering, Page, PageParams, paginate
from hookpost.kit.time import utcnow
from hookpost.messages.schemas import MessageIn, MessageOut
from hookpost.messages.statements import BatchStatements, NewDeliveryRow, NewMessageRow, batch_statements
from hookpost.observability.metrics import MESSAGES_ACCEPTED
from hookpost.settings import Settings
from hookpost.storage.database import database_unavailable
from hookpost.storage.models import Application, Delivery, Endpoint, Message, MessageStatus, TriggerType


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
class _Schedule:
    """When a new message's deliveries come due, and whether the API publishes them now."""

    due: datetime
    queued_until: datetime | None
    publish: bool


def _schedule(data: MessageIn, now: datetime, settings: Settings) -> _Schedule:
    if data.deliver_at is not None and data.deliver_at > now:
        # Left to the scheduler, which queues a delivery once it is due: nothing to publish now.
        return _Schedule(data.deliver_at, None, publish=False)
    # Marked queued: the API publishes them right after the commit; the scheduler is the
    # safety net should that publish never happen.
    return _Schedule(now, now + timedelta(seconds=settings.requeue_after), publish=True)


def _message_row(
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
        return query


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


def endpoint_wants(endpoint: Endpoint, event_type: str, channels: Sequence[str] | None) -> bool:
    return _wants(endpoint.event_types, endpoint.channels, event_type, channels)


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
    return any(_wants(event_types, wanted, event_type, channels) for event_types, wanted in filters)


async def _find_duplicate(
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
    duplicate = await _find_duplicate(session, application, data, idempotency_key)
    if duplicate is not None:
        return Stored(duplicate, [], created=False)

    now = utcnow()
    message = Message(**_message_row(new_id("msg"), application.id, idempotency_key, data, now, traceparent)._asdict())
    endpoints = await session.scalars(
        select(Endpoint).where(Endpoint.app_id == application.id, Endpoint.disabled.is_(False))
    )
    schedule = _schedule(data, now, settings)
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
        duplicate = await _find_duplicate(session, application, data, idempotency_key)
        if duplicate is None:
            raise
        return Stored(duplicate, [], created=False)
    MESSAGES_ACCEPTED.inc()
    return Stored(message, [delivery.id for delivery in deliveries] if schedule.publish else [], created=True)


# --- the hot path: messages from concurrent requests written together -----------------------


@dataclass(frozen=True)
class NewMessage:
    """One POST .../msg, as the router got it."""

    app_id_or_uid: str
    data: MessageIn
    idempotency_key: str | None
    traceparent: str | None = None  # stored with the message (observability/tracing.py)


@dataclass(frozen=True)
class Accepted:
    """A stored message (or, for a repeat, the original) and the deliveries to queue."""

    message: MessageOut
    delivery_ids: list[str]
    app_id: str
    created: bool  # False for a repeat: nothing new happened

    def out(self, *, with_content: bool) -> MessageOut:
        return self.message if with_content else self.message.model_copy(update={"payload": {}})


@dataclass(frozen=True)
class _Target:
    app_id: str
    endpoints: list[tuple[str, list[str] | None, list[str] | None]]  # id, event types, channels


def _wants(
    event_types: list[str] | None, channels: list[str] | None, event_type: str, wanted: Sequence[str] | None
) -> bool:
    if event_types and event_type not in event_types:
        return False
    return not channels or bool(set(channels) & set(wanted or ()))


async def _targets(statements: BatchStatements, session: AsyncSession, refs: set[str]) -> dict[str, _Target]:
    """Each application named (by id or uid) with its enabled endpoints, in one query."""
    by_id: dict[str, _Target] = {}
    uids: dict[str, str] = {}
    for app_id, uid, endpoint_id, event_types, channels in await statements.targets(session, sorted(refs)):
        target = by_id.setdefault(app_id, _Target(app_id, []))
        if uid is not None:
            uids[uid] = app_id
        if endpoint_id is not None:
            target.endpoints.append((endpoint_id, event_types, channels))
    # As find_application: a ref of an id's shape names an application by id only, any other by uid only.
    named = {ref: by_id.get(ref) if names_by_id(ref) else by_id.get(uids.get(ref, "")) for ref in refs}
    return {ref: target for ref, target in named.items() if target is not None}


def _keys_of(app_id: str, item: NewMessage) -> set[tuple[str, str, str]]:
    keys = set()
    if item.idempotency_key is not None:
        keys.add((app_id, "key", item.idempotency_key))
    if item.data.event_id is not None:
        keys.add((app_id, "event", item.data.event_id))
    return keys


async def _stored_keys(
    session: AsyncSession, items: Sequence[NewMessage], targets: Mapping[str, _Target]
) -> set[tuple[str, str, str]]:
    """The idempotency keys and eventIds of the batch already stored. The insert's ON CONFLICT
    finds a repeat only in its own week on PostgreSQL (the unique keys are per partition,
    storage/partitions.py); this finds one from an earlier week. A query only for a batch with keys."""
    wanted = set().union(
        *(_keys_of(targets[item.app_id_or_uid].app_id, item) for item in items if item.app_id_or_uid in targets)
    )
    if not wanted:
        return set()
    apps = {app_id for app_id, _, _ in wanted}
    idempotency_keys = {key for _, kind, key in wanted if kind == "key"}
    event_ids = {key for _, kind, key in wanted if kind == "event"}
    rows = await session.execute(
        select(Message.app_id, Message.idempotency_key, Message.event_id).where(
            Message.app_id.in_(apps),
            or_(Message.idempotency_key.in_(idempotency_keys), Message.event_id.in_(event_ids)),
        )
    )
    found: set[tuple[str, str, str]] = set()
    for app_id, idempotency_key, event_id in rows:
        found |= {(app_id, "key", idempotency_key or ""), (app_id, "event", event_id or "")}
    return found & wanted


class MessageWriter:
    """Stores messages from concurrent requests a batch at a time (see ``kit.batching``).

    Each batch is a few statements whatever its size (``statements``): the applications and
    their endpoints, then the messages and the deliveries (on PostgreSQL one statement, in
    autocommit), durable before any of its requests is answered. A repeat of an idempotency
    key or eventId is skipped by the database (ON CONFLICT DO NOTHING) and answered with the
    original message after the commit, as ``create_message`` does.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        batch_sessionmaker: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        """``batch_sessionmaker`` for the batches, which are one statement on PostgreSQL (an
        autocommit engine saves their round trips); the rest (a repeat's original, a message
        written alone) uses ``sessionmaker``."""
        self._sessionmaker = sessionmaker
        self._batch_sessionmaker = batch_sessionmaker or sessionmaker
        self._settings = settings
        # SQLite has one writer at a time anyway; PostgreSQL overlaps a few transactions.
        concurrent = 1 if settings.is_sqlite else 4
        self._batches = GroupCommit(self._write, max_batch=256, max_concurrent=concurrent)
        self._statements = batch_statements(settings.is_sqlite)

    async def submit(self, item: NewMessage) -> Accepted | None:
        """The stored message; None when the application does not exist (the caller decides)."""
        return await self._batches.submit(item)

    async def _write(self, items: list[NewMessage]) -> list[Accepted | BaseException | None]:
        try:
            results, repeats = await self._write_batch(items)
        except Exception as exc:
            if len(items) == 1 or database_unavailable(exc):
                raise  # the same for every item: no use trying each
            # One item the database refused (an application deleted mid-batch, content the
            # checks missed): one transaction per message tells each request its own outcome,
            # so one request's content fails that request only.
            return [await self._write_alone(item) for item in items]
        for index in repeats:
            results[index] = await self._original(items[index])
        return list(results)

    async def _write_alone(self, item: NewMessage) -> Accepted | BaseException | None:
        try:
            return await self._write_one(item)
        except Exception as exc:
            return exc

    async def _write_batch(self, items: list[NewMessage]) -> tuple[list[Accepted | None], list[int]]:
        settings = self._settings
        now = utcnow()
        results: list[Accepted | None] = [None] * len(items)
        messages: list[NewMessageRow] = []
        deliveries: list[NewDeliveryRow] = []
        planned: list[tuple[int, str, str, list[str]]] = []  # item index, message id, app id, to publish
        async with self._batch_sessionmaker() as session:
            targets = await _targets(self._statements, session, {item.app_id_or_uid for item in items})
            stored_keys = await _stored_keys(session, items, targets)
            repeats: list[int] = []
            for index, item in enumerate(items):
                target = targets.get(item.app_id_or_uid)
                if target is None:
                    continue
                if _keys_of(target.app_id, item) & stored_keys:
                    repeats.append(index)
                    continue
                data = item.data
                msg_id = new_id("msg")
                messages.append(_message_row(msg_id, target.app_id, item.idempotency_key, data, now, item.traceparent))
                schedule = _schedule(data, now, settings)
                ids = []
                for endpoint_id, event_types, channels in target.endpoints:
                    if _wants(event_types, channels, data.event_type, data.channels):
                        ids.append(new_id("dlv"))
                        deliveries.append(
                            NewDeliveryRow(
                                ids[-1],
                                target.app_id,
                                msg_id,
                                endpoint_id,
                                MessageStatus.PENDING,
                                TriggerType.SCHEDULED,
                                0,
                                schedule.due,
                                schedule.queued_until,
                                now,
                                now,
                            )
                        )
                planned.append((index, msg_id, target.app_id, ids if schedule.publish else []))
            if not messages:
                return results, repeats
            inserted = await self._statements.insert(session, messages, deliveries)
            await session.commit()
        for index, msg_id, app_id, to_publish in planned:
            if msg_id not in inserted:
                repeats.append(index)  # a repeat of a key or eventId: the original answers
                continue
            data = items[index].data
            out = MessageOut(
                id=msg_id,
                event_type=data.event_type,
                event_id=data.event_id,
                payload=data.payload,
                channels=data.channels,
                tags=data.tags,
                timestamp=now,
                deliver_at=data.deliver_at,
            )
            results[index] = Accepted(out, to_publish, app_id, created=True)
        MESSAGES_ACCEPTED.inc(len(inserted))
        return results, repeats

    async def _original(self, item: NewMessage) -> Accepted | None:
        async with self._sessionmaker() as session:
            application = await find_application(session, item.app_id_or_uid)
            if application is None:
                return None
            duplicate = await _find_duplicate(session, application, item.data, item.idempotency_key)
            return None if duplicate is None else Accepted(message_out(duplicate), [], application.id, created=False)

    async def _write_one(self, item: NewMessage) -> Accepted | None:
        async with self._sessionmaker() as session:
            application = await find_application(session, item.app_id_or_uid)
            if application is None:
                return None
            stored = await create_message(
                session, application, item.data, item.idempotency_key, self._settings, item.traceparent
            )
            await session.commit()
            return Accepted(message_out(stored.message), stored.delivery_ids, application.id, stored.created)


# One writer per API process and lifespan: keyed by the lifespan's sessionmaker.
_writers: WeakKeyDictionary[async_sessionmaker[AsyncSession], MessageWriter] = WeakKeyDictionary()


def message_writer(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    batch_sessionmaker: async_sessionmaker[AsyncSession] | None = None,
) -> MessageWriter:
    writer = _writers.get(sessionmaker)
    if writer is None:
        writer = _writers[sessionmaker] = MessageWriter(sessionmaker, settings, batch_sessionmaker)
    return writer
