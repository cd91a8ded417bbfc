"""What is due: the deliveries free to send now, the scheduler's queueing of them, and
whether any destination is delivered in order (the FIFO runner's work).

Apart from the claim and the FIFO runner (``claim.py``, ``fifo.py``), which load the sender
(httpx, aiohttp) and the rest of a worker's machinery: the scheduler needs only these
queries, and a process of its own should not carry what only a worker uses.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.delivery.sinks import DELIVERED_TYPES
from hookpost.destinations.kinds import StatusIn
from hookpost.kit.time import utcnow
from hookpost.settings import Settings
from hookpost.storage.models import Delivery, Destination, Endpoint, pending

_ENABLED = StatusIn.ENABLED.value


def is_free(now: datetime) -> ColumnElement[bool]:
    return or_(Delivery.lease_until.is_(None), Delivery.lease_until < now)


def claimable(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Pending, due and held by nobody: the due set's partial index (``pending()``), then the lease."""
    return (pending(), Delivery.next_attempt_at <= now, is_free(now))


def sendable(settings: Settings, now: datetime, limit: int) -> Select[str]:
    """The ids of up to ``limit`` claimable deliveries to enabled endpoints, the longest due
    first; on PostgreSQL locked as read, skipping rows another transaction has locked."""
    query = (
        select(Delivery.id)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(*claimable(now), Endpoint.disabled.is_(False))
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
    )
    if not settings.is_sqlite:
        query = query.with_for_update(of=Delivery, skip_locked=True)
    return query


async def claim_due_for_queue(session: AsyncSession, settings: Settings, limit: int) -> list[str]:
    """Mark up to ``limit`` due deliveries as queued and return their ids.

    ``queued_until`` keeps them from being queued twice while their task waits in the
    broker; if the broker loses the task, they come due again when it passes.
    """
    now = utcnow()
    due = sendable(settings, now, limit).where(or_(Delivery.queued_until.is_(None), Delivery.queued_until < now))
    ids = list((await session.scalars(due)).all())
    if ids:
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(queued_until=now + timedelta(seconds=settings.requeue_after))
        )
    await session.commit()
    return ids


def fifo_destinations() -> Any:
    """The destinations delivered in order (a sink's type) and enabled."""
    return (Destination.type.in_(DELIVERED_TYPES), Destination.status == _ENABLED)


async def any_fifo_destination(session: AsyncSession) -> bool:
    """Whether any destination delivered in order is enabled: the scheduler nudges workers only then."""
    return bool(await session.scalar(select(exists().where(*fifo_destinations()))))
