"""Periodic upkeep: background work started through the API, and the retention purge."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookpost.auth.sign_in_throttle import forget_old_sign_in_failures
from hookpost.auth.web_sessions import forget_expired_ended_sessions
from hookpost.background_tasks.kinds import RECOVER
from hookpost.delivery.claim import claim_due_for_queue
from hookpost.delivery.ratelimit import forget_old_windows
from hookpost.delivery.restart import restart_delivery
from hookpost.delivery.unqueue import unmark_queued
from hookpost.kit.time import utcnow
from hookpost.settings import Settings
from hookpost.statistics.counts import Counts, store_counts
from hookpost.storage.models import (
    Attempt,
    BackgroundTask,
    Delivery,
    Destination,
    DestinationAttempt,
    FifoLease,
    Message,
    MessageStatus,
    TriggerType,
)

logger = logging.getLogger(__name__)

STEP = 500  # deliveries re-queued per run, so one large recover cannot starve the scheduler
LEASE = timedelta(minutes=2)


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


async def _claim_task(session: AsyncSession) -> BackgroundTask | None:
    now = utcnow()
    query = (
        select(BackgroundTask)
        .where(
            BackgroundTask.status == "running",
            or_(BackgroundTask.lease_until.is_(None), BackgroundTask.lease_until < now),
        )
        .order_by(BackgroundTask.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Two schedulers never take the same step: the second skips the row the first holds.
        query = query.with_for_update(skip_locked=True)
    task = await session.scalar(query)
    if task is not None:
        task.lease_until = now + LEASE
        await session.commit()
    return task


async def _recover_step(session: AsyncSession, task: BackgroundTask) -> None:
    """Make the next batch of the endpoint's failed deliveries in [since, until) due again."""
    data = dict(task.data)
    query = (
        select(Delivery)
        .join(Message, Message.id == Delivery.msg_id)
        .where(
            Delivery.endpoint_id == data["endpointId"],
            Delivery.status == MessageStatus.FAIL,
            Message.created_at >= datetime.fromisoformat(data["since"]),
            Delivery.id > data.get("cursor", ""),
        )
        .order_by(Delivery.id)
        .limit(STEP)
    )
    if data.get("until"):
        query = query.where(Message.created_at < datetime.fromisoformat(data["until"]))
    deliveries = list((await session.scalars(query)).all())
    now = utcnow()
    counts = Counts()
    for delivery in deliveries:
        restart_delivery(delivery, TriggerType.SCHEDULED, now, counts)
    await store_counts(session, counts)
    data["recovered"] = data.get("recovered", 0) + len(deliveries)
    if deliveries:
        data["cursor"] = deliveries[-1].id
    if len(deliveries) < STEP:
        task.status = "finished"
    task.data = data
    task.lease_until = None


async def advance_background_tasks(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session:
        task = await _claim_task(session)
        if task is None:
            return
        # Imported once there is a task: the replay and purge steps bring the API's modules
        # (FastAPI among them), which a delivery worker that runs none would carry for nothing.
        from hookpost.background_tasks.steps import STEPS  # noqa: PLC0415

        try:
            if task.kind == RECOVER:
                await _recover_step(session, task)
            elif task.kind in STEPS:
                await STEPS[task.kind](session, task)
            else:
                task.status = "failed"
                task.data = {**task.data, "error": f"unknown task kind {task.kind}"}
            await session.commit()
        except Exception:
            logger.exception("background task %s failed a step; it is retried when its lease ends", task.id)
            await session.rollback()


async def purge_expired_content(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """Blank payloads and attempt bodies older than the payload retention; keep what happened
    (until retention.py removes the rows).

    A message's own retention (payloadRetentionPeriod/Hours) overrides the default. A message
    still owed to an endpoint keeps its payload until its last delivery ends, and one still
    owed to an enabled FIFO destination until that destination has delivered it.
    """
    now = utcnow()
    cutoff = now - timedelta(days=settings.payload_retention_days or settings.retention_days)
    still_pending = exists().where(Delivery.msg_id == Message.id, Delivery.status == MessageStatus.PENDING)
    # Still owed to an enabled FIFO destination of its application: past that destination's position.
    still_queued = (
        exists()
        .where(FifoLease.destination_id == Destination.id, Message.id > FifoLease.position)
        .where(Destination.app_id == Message.app_id, Destination.status == "enabled")
    )
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
