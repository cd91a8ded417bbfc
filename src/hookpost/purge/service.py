"""Blank message payloads on request. What happened (messages, attempts) stays on record.

A delivery still pending for an expunged message is canceled: there is nothing left to send.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.kit.ids import ids_made_before, new_id
from hookpost.kit.time import utcnow
from hookpost.purge.schemas import BulkExpungeStatus
from hookpost.statistics.counts import Counts, store_counts
from hookpost.storage.models import Application, BackgroundTask, Delivery, Message, MessageStatus

PURGE_CONTENT = "application.purge_content"
STEP = 1000  # messages blanked per run


async def expunge_messages(session: AsyncSession, msg_ids: Sequence[str]) -> None:
    """Delete these payloads for good; deliveries still owed are canceled (nothing left to send).

    The one way a payload is expunged (one message, some, or all). An attempt in flight right
    now is recorded, but no longer decides its delivery's state: its lease goes too, so it
    cannot schedule a retry of an empty body.
    """
    await session.execute(
        update(Message).where(Message.id.in_(msg_ids)).values(payload="").execution_options(synchronize_session=False)
    )
    canceled = await session.execute(
        update(Delivery)
        .where(Delivery.msg_id.in_(msg_ids), Delivery.status == MessageStatus.PENDING)
        .values(status=MessageStatus.CANCELED, next_attempt_at=None, lease_until=None, queued_until=None)
        .returning(Delivery.app_id, Delivery.endpoint_id, Delivery.created_at)
        .execution_options(synchronize_session=False)
    )
    counts = Counts()
    for app_id, endpoint_id, created_at in canceled:
        counts.settled(app_id, endpoint_id, created_at, MessageStatus.CANCELED)
    await store_counts(session, counts)


async def bulk_expunge(
    session: AsyncSession, application: Application, refs: Sequence[str]
) -> dict[str, BulkExpungeStatus]:
    """Expunge the messages named (by id or eventId); the outcome for each name."""
    found = (
        await session.execute(
            select(Message.id, Message.event_id).where(
                Message.app_id == application.id, or_(Message.id.in_(refs), Message.event_id.in_(refs))
            )
        )
    ).all()
    by_ref = {msg_id: msg_id for msg_id, _ in found} | {event_id: msg_id for msg_id, event_id in found if event_id}
    await expunge_messages(session, sorted(set(by_ref.values())))
    return {ref: BulkExpungeStatus.EXPUNGED if ref in by_ref else BulkExpungeStatus.NOT_FOUND for ref in refs}


def start_expunge_all(session: AsyncSession, application: Application) -> BackgroundTask:
    """Every message stored until now; one sent later keeps its payload."""
    task = BackgroundTask(
        id=new_id("qtask"),
        kind=PURGE_CONTENT,
        data={"appId": application.id, "until": utcnow().isoformat(), "expunged": 0},
    )
    session.add(task)
    return task


async def expunge_all_step(session: AsyncSession, task: BackgroundTask) -> None:
    data = dict(task.data)
    msg_ids = list(
        (
            await session.scalars(
                select(Message.id)
                .where(
                    Message.app_id == data["appId"],
                    Message.created_at <= datetime.fromisoformat(data["until"]),
                    Message.id < ids_made_before("msg", datetime.fromisoformat(data["until"])),
                    Message.id > data.get("cursor", ""),
                )
                .order_by(Message.id)
                .limit(STEP)
            )
        ).all()
    )
    await expunge_messages(session, msg_ids)
    data["expunged"] = data.get("expunged", 0) + len(msg_ids)
    if msg_ids:
        data["cursor"] = msg_ids[-1]
    if len(msg_ids) < STEP:
        task.status = "finished"
    task.data = data
    task.lease_until = None
