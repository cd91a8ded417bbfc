"""Periodic upkeep: queueing due deliveries, and the retention purge (background tasks
started through the API advance in ``background_tasks.runner``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import and_, exists, or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookpost.auth.sign_in_throttle import forget_old_sign_in_failures
from hookpost.auth.web_sessions import forget_expired_ended_sessions
from hookpost.delivery.due import claim_due_for_queue
from hookpost.delivery.ratelimit import forget_old_windows
from hookpost.delivery.retention import owed_to_fifo
from hookpost.delivery.unqueue import unmark_queued
from hookpost.kit.time import utcnow
from hookpost.settings import Settings
from hookpost.storage.models import (
    Attempt,
    Delivery,
    DestinationAttempt,
    Message,
    MessageStatus,
)

logger = logging.getLogger(__name__)


async def queue_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    publish: Callable[[list[str]], Awaitable[None]],
) -> int:
    """Publish a delivery task for every delivery that is due and neither queued nor held
    (retries, and deliveries whose task the broker lost), a batch per task; return how many.

    Bounded per call, so one tick of a large backlog does not run for ever; the next tick
    goes on. Idle, it is one indexed query and publishes nothing.
    """
    queued = 0
    while True:
        async with sessionmaker() as session:
            ids = await claim_due_for_queue(session, settings, settings.delivery_batch_size)
        if ids:
            try:
                await publish(ids)
            except Exception:
                # Not queued after all (the broker is down): due again at the next tick
                # rather than once ``requeue_after`` has passed.
                async with sessionmaker() as session:
                    await unmark_queued(session, ids)
                raise
            queued += len(ids)
        if len(ids) < settings.delivery_batch_size or queued >= 100 * settings.delivery_batch_size:
            return queued


async def purge_expired_content(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """Blank payloads and attempt bodies older than the payload retention; keep what happened
    (until retention.py removes the rows).

    A message's own retention (payloadRetentionPeriod/Hours) overrides the default. A message
    still owed to an endpoint keeps its payload until its last delivery ends, and one still
    owed to a FIFO destination (enabled or disabled) until that destination has delivered it.
    """
    now = utcnow()
    cutoff = now - timedelta(days=settings.payload_retention_days or settings.retention_days)
    still_pending = exists().where(Delivery.msg_id == Message.id, Delivery.status == MessageStatus.PENDING)
    # Still owed to a FIFO destination of its application, enabled or not (enabled again, a
    # disabled one sends what it owes): the rule retention keeps rows by.
    still_queued = await owed_to_fifo(sessionmaker)
    expired = or_(
        and_(Message.payload_expires_at.is_(None), Message.created_at < cutoff), Message.payload_expires_at < now
    )
    async with sessionmaker() as session:
        messages = await session.execute(
            update(Message).where(expired, Message.payload != "", ~still_pending, ~still_queued).values(payload="")
        )
        for attempts in (Attempt, DestinationAttempt):
            await session.execute(
                update(attempts).where(attempts.created_at < cutoff, attempts.response != "").values(response="")
            )
        await forget_old_windows(session)
        await forget_expired_ended_sessions(session)
        await forget_old_sign_in_failures(session)
        await session.commit()
    purged: int = messages.rowcount  # type: ignore[attr-defined]
    if purged:
        logger.info("retention: purged the payloads of %d messages older than %s", purged, cutoff.isoformat())
    return purged
