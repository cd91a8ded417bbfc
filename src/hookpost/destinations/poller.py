"""Polling endpoints: a consumer pulls the application's messages in the order they were
accepted (message ids begin with their time), filtered as an endpoint's.

A position is a message-id bound: a page holds the messages after it. A poller hands out
only messages older than ``poller_settle`` (and, on PostgreSQL, older than the oldest write
still open), so a message committed late is never behind a position already handed out:
every accepted message is on some page. Nothing is marked as read: the same position reads
the same messages again, which is what a retried poll gets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.destinations.kinds import DestinationType, StatusIn
from hookpost.destinations.position import start_position
from hookpost.destinations.service import find_destination
from hookpost.kit.errors import Conflict, InvalidInput, NotFound
from hookpost.kit.filters import json_list_has
from hookpost.kit.ids import first_id_at
from hookpost.kit.time import utcnow
from hookpost.settings import Settings
from hookpost.storage.models import Application, Destination, Message, PollerConsumer

_POSITION = re.compile(r"^msg_[0-9A-Za-z]{22}$")
# The start of the oldest transaction, other than this one, that is writing or running a
# statement in this database: a message it writes has an id from about then.
_OLDEST_OPEN_WRITE = text(
    "SELECT min(xact_start) FROM pg_stat_activity WHERE datname = current_database()"
    " AND pid <> pg_backend_pid() AND (backend_xid IS NOT NULL OR state = 'active')"
)


@dataclass(frozen=True)
class PollPage:
    messages: list[Message]
    iterator: str
    done: bool


async def find_poller(session: AsyncSession, application: Application, sink_id: str) -> Destination:
    """The application's polling endpoint by id or uid: 404 if it has none such, 409 if disabled."""
    destination = await find_destination(session, application, sink_id)
    if destination is None or destination.type != DestinationType.POLLING_ENDPOINT:
        raise NotFound("Polling endpoint not found")
    if destination.status == StatusIn.DISABLED:
        raise Conflict("This polling endpoint is disabled")
    return destination


def parse_position(iterator: str, loc: tuple[str | int, ...] = ("query", "iterator")) -> str:
    if not _POSITION.match(iterator):
        raise InvalidInput(loc, "not an iterator this server gave out", "invalid_iterator")
    return iterator


def position_after(moment: datetime) -> str:
    """The position from which messages accepted at ``moment`` or later are read."""
    return first_id_at("msg", int(moment.timestamp() * 1000))


async def _horizon(session: AsyncSession, settings: Settings) -> str:
    """The bound below which every message that will ever be committed already is."""
    now = utcnow()
    if not settings.is_sqlite:
        oldest = await session.scalar(_OLDEST_OPEN_WRITE)
        if oldest is not None and oldest < now:
            now = oldest
    return position_after(now - timedelta(seconds=settings.poller_settle))


async def read_page(
    session: AsyncSession,
    destination: Destination,
    position: str,
    limit: int,
    settings: Settings,
    event_type: str | None = None,
    channel: str | None = None,
) -> PollPage:
    """The messages after ``position`` that the destination wants, oldest first."""
    horizon = await _horizon(session, settings)
    query = select(Message).where(Message.app_id == destination.app_id, Message.id > position, Message.id < horizon)
    if destination.event_types:
        query = query.where(Message.event_type.in_(destination.event_types))
    if destination.channels:
        query = query.where(or_(*(json_list_has(Message.channels, name) for name in destination.channels)))
    if event_type is not None:
        query = query.where(Message.event_type == event_type)
    if channel is not None:
        query = query.where(json_list_has(Message.channels, channel))
    rows = list((await session.scalars(query.order_by(Message.id).limit(limit + 1))).all())
    if len(rows) > limit:
        return PollPage(rows[:limit], rows[limit - 1].id, done=False)
    # Everything up to the horizon is read: the next page starts there (never behind where it began).
    return PollPage(rows, max(horizon, position), done=True)


async def poll(
    session: AsyncSession,
    destination: Destination,
    settings: Settings,
    *,
    limit: int,
    iterator: str | None,
    after: datetime | None,
    event_type: str | None,
    channel: str | None,
) -> PollPage:
    """``message.poller.poll``: from ``iterator``, else from ``after``, else from the destination's creation."""
    if iterator is not None:
        position = parse_position(iterator)
    elif after is not None:
        position = position_after(after)
    else:
        position = start_position(destination)
    return await read_page(session, destination, position, limit, settings, event_type, channel)


async def _consumer(session: AsyncSession, destination: Destination, consumer_id: str) -> PollerConsumer | None:
    return await session.get(PollerConsumer, (destination.id, consumer_id))


async def _store_position(session: AsyncSession, destination: Destination, consumer_id: str, position: str) -> None:
    consumer = await _consumer(session, destination, consumer_id)
    if consumer is not None:
        consumer.position = position
        await session.flush()
        return
    try:
        async with session.begin_nested():
            session.add(PollerConsumer(destination_id=destination.id, consumer_id=consumer_id, position=position))
    except IntegrityError:
        # Made by a concurrent call meanwhile: this call's position is the newer word.
        consumer = await _consumer(session, destination, consumer_id)
        if consumer is None:
            raise
        consumer.position = position
        await session.flush()


async def consumer_poll(
    session: AsyncSession,
    destination: Destination,
    consumer_id: str,
    settings: Settings,
    *,
    limit: int,
    iterator: str | None,
) -> PollPage:
    """``message.poller.consumer_poll``: from ``iterator`` if given, else from where the
    consumer's last answer ended (else the destination's creation); the consumer's position
    moves to the end of this answer."""
    if iterator is not None:
        position = parse_position(iterator)
    else:
        consumer = await _consumer(session, destination, consumer_id)
        position = consumer.position if consumer is not None else start_position(destination)
    page = await read_page(session, destination, position, limit, settings)
    await _store_position(session, destination, consumer_id, page.iterator)
    return page


async def consumer_seek(session: AsyncSession, destination: Destination, consumer_id: str, after: datetime) -> str:
    """``message.poller.consumer_seek``: the consumer reads next the messages accepted from ``after`` on."""
    position = position_after(after)
    await _store_position(session, destination, consumer_id, position)
    return position
