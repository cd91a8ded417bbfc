"""The hot path of accepting messages: messages from concurrent requests written together, a
batch at a time (``kit.batching``), in a few statements per batch (``messages.statements``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookpost.applications.service import find_application, names_by_id
from hookpost.kit.batching import GroupCommit
from hookpost.kit.ids import new_id
from hookpost.kit.time import utcnow
from hookpost.messages.schemas import MessageIn, MessageOut
from hookpost.messages.service import (
    create_message,
    delivery_schedule,
    filter_wants,
    find_duplicate,
    message_out,
    message_row,
)
from hookpost.messages.statements import BatchStatements, NewDeliveryRow, NewMessageRow, batch_statements
from hookpost.observability.metrics import MESSAGES_ACCEPTED
from hookpost.settings import Settings
from hookpost.storage.database import database_unavailable
from hookpost.storage.models import Message, MessageStatus, TriggerType


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
                messages.append(message_row(msg_id, target.app_id, item.idempotency_key, data, now, item.traceparent))
                schedule = delivery_schedule(data, now, settings)
                ids = []
                for endpoint_id, event_types, channels in target.endpoints:
                    if filter_wants(event_types, channels, data.event_type, data.channels):
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
            duplicate = await find_duplicate(session, application, item.data, item.idempotency_key)
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
