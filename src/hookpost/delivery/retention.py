"""Retention that removes rows: messages, their deliveries and attempts past ``retention_days``.

A message's age is the time its id begins with (its creation). A message still owed to any
endpoint (a delivery pending or sending: retrying, scheduled for later, or held for a
disabled endpoint) is kept whole, with its deliveries and attempts, until its last delivery
ends; the next run then removes it. Likewise a message a FIFO destination of its application
has not delivered yet (after that destination's position; enabled or disabled, for a
disabled one carries on from there once enabled): kept until the destination has moved past
it, or is deleted. The endpoint rollup is not touched: it is the history
of the counts, and endpoint stats keep counting what was removed.

PostgreSQL: a week's partitions (storage/partitions.py) wholly past the retention are
dropped, unless a delivery in them is still owed or a FIFO destination still owes a message
in them; then the rest of that week is deleted in
batches and the partition stays until its owed deliveries end. The same run makes the next
weeks' partitions. SQLite: deletes in batches, one short transaction each, so another writer
never waits long on the write lock.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, false, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookpost.destinations.kinds import DestinationType
from hookpost.destinations.position import start_position
from hookpost.kit.ids import first_id_at
from hookpost.kit.time import utcnow
from hookpost.settings import Settings
from hookpost.storage import partitions
from hookpost.storage.models import Attempt, Delivery, Destination, FifoLease, Message, MessageStatus

logger = logging.getLogger(__name__)

BATCH = 500  # messages removed per transaction
OWED = (MessageStatus.PENDING, MessageStatus.SENDING)
# A partition is dropped under an exclusive lock on its table: if a long query holds it, give
# up for this run rather than queue every insert behind the wait.
LOCK_TIMEOUT = "2s"


@dataclass
class Removed:
    messages: int = 0  # deleted row by row
    weeks_dropped: int = 0  # whole partitions (PostgreSQL)
    weeks_kept: int = 0  # past the retention but still owed a delivery


def cutoff_id(now: datetime, retention_days: float) -> str:
    """Messages with a smaller id are past the retention."""
    return first_id_at("msg", int((now - timedelta(days=retention_days)).timestamp() * 1000))


async def owed_to_fifo(sessionmaker: async_sessionmaker[AsyncSession]) -> ColumnElement[bool]:
    """Whether a message is still owed to a FIFO destination of its application: after its
    position. A destination whose lease the workers have not opened yet (just created) owes
    every message from its start position, as its lease will say."""
    leased = exists().where(
        FifoLease.destination_id == Destination.id,
        Destination.app_id == Message.app_id,
        Message.id > FifoLease.position,
    )
    async with sessionmaker() as session:
        unopened = await session.scalars(
            select(Destination).where(
                Destination.type == DestinationType.FIFO_ENDPOINT.value,
                ~exists().where(FifoLease.destination_id == Destination.id),
            )
        )
        starts = [(destination.app_id, start_position(destination)) for destination in unopened]
    return or_(leased, *(and_(Message.app_id == app_id, Message.id > start) for app_id, start in starts))


async def delete_expired(
    sessionmaker: async_sessionmaker[AsyncSession],
    before: str,
    after: str = "",
    batch: int = BATCH,
    *,
    kept: ColumnElement[bool] | None = None,
) -> int:
    """Delete messages with ``after <= id < before`` owed to no endpoint (nor ``kept``: those a
    FIFO destination still owes), with their deliveries and attempts, ``batch`` messages per
    transaction; return how many."""
    owed = or_(
        exists().where(Delivery.msg_id == Message.id, Delivery.status.in_(OWED)), false() if kept is None else kept
    )
    removed = 0
    start = Message.id >= after
    while True:
        async with sessionmaker() as session:
            ids = list(
                await session.scalars(
                    select(Message.id).where(start, Message.id < before, ~owed).order_by(Message.id).limit(batch)
                )
            )
            if not ids:
                return removed
            await session.execute(delete(Attempt).where(Attempt.msg_id.in_(ids)))
            await session.execute(delete(Delivery).where(Delivery.msg_id.in_(ids)))
            await session.execute(delete(Message).where(Message.id.in_(ids)))
            await session.commit()
        removed += len(ids)
        start = Message.id > ids[-1]  # the owed ones before it are skipped for good
        await asyncio.sleep(0)  # let the process's other work (and, on SQLite, writers) in


async def _drop_or_thin_periods(
    sessionmaker: async_sessionmaker[AsyncSession], before: str, removed: Removed, kept: ColumnElement[bool]
) -> None:
    async with sessionmaker() as session:
        connection = await session.connection()
        periods = await partitions.existing_periods(connection)
    for start in periods:
        low, high = partitions.period_bounds(start)
        if high > before:
            break  # not wholly past the retention
        async with sessionmaker() as session:
            name = partitions.partition_name("delivery", start)
            still_owed = await session.scalar(
                text(f"SELECT EXISTS (SELECT 1 FROM {name} WHERE status IN (1, 3))")  # noqa: S608 - our own name
            ) or await session.scalar(select(exists().where(Message.id >= low, Message.id < high, kept)))
            if not still_owed:
                await session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                await partitions.drop_period(await session.connection(), start)
                await session.commit()
                removed.weeks_dropped += 1
                continue
        removed.weeks_kept += 1
        removed.messages += await delete_expired(sessionmaker, high, after=low, kept=kept)


async def remove_expired_history(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> Removed:
    """Remove what is past ``retention_days`` (see the module's docstring); on PostgreSQL make
    the coming weeks' partitions too. Safe to run concurrently and again."""
    now = utcnow()
    before = cutoff_id(now, settings.retention_days)
    removed = Removed()
    kept = await owed_to_fifo(sessionmaker)
    partitioned = False
    if not settings.is_sqlite:
        async with sessionmaker() as session:
            connection = await session.connection()
            partitioned = await partitions.is_partitioned(connection)
            if partitioned:
                await partitions.make_periods_ahead(connection, now.date())
                await session.commit()
    if partitioned:
        await _drop_or_thin_periods(sessionmaker, before, removed, kept)
        # Rows older than every week's partition (in the default ones).
        oldest = min([before, *(partitions.period_bounds(start)[0] for start in await _periods(sessionmaker))])
        removed.messages += await delete_expired(sessionmaker, oldest, kept=kept)
    else:
        removed.messages += await delete_expired(sessionmaker, before, kept=kept)
    if removed.messages or removed.weeks_dropped or removed.weeks_kept:
        logger.info(
            "retention: removed %d weeks whole and %d messages one by one, older than %s; %d weeks kept for deliveries"
            " still owed (to endpoints or FIFO destinations)",
            removed.weeks_dropped,
            removed.messages,
            (now - timedelta(days=settings.retention_days)).isoformat(),
            removed.weeks_kept,
        )
    return removed


async def _periods(sessionmaker: async_sessionmaker[AsyncSession]) -> list[date]:
    async with sessionmaker() as session:
        return await partitions.existing_periods(await session.connection())
