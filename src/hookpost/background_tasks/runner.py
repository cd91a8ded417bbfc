"""Advancing background tasks: one bounded step of one task per scheduler tick, under a lease,
so a large task cannot starve the scheduler and two schedulers never take the same step."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookpost.background_tasks.kinds import RECOVER
from hookpost.delivery.restart import restart_delivery
from hookpost.kit.ids import ids_made_after, ids_made_before
from hookpost.kit.time import utcnow
from hookpost.statistics.counts import Counts, store_counts
from hookpost.storage.models import BackgroundTask, Delivery, Message, MessageStatus, TriggerType

logger = logging.getLogger(__name__)

STEP = 500  # deliveries re-queued per run, so one large recover cannot starve the scheduler
LEASE = timedelta(minutes=2)


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
            # Its message's id bounds the window too (ids begin with their time): only its weeks are read.
            Delivery.msg_id >= ids_made_after("msg", datetime.fromisoformat(data["since"])),
            Delivery.id > data.get("cursor", ""),
        )
        .order_by(Delivery.id)
        .limit(STEP)
    )
    if data.get("until"):
        until = datetime.fromisoformat(data["until"])
        query = query.where(Message.created_at < until, Delivery.msg_id < ids_made_before("msg", until))
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
