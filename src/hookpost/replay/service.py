"""Replay tasks: started by the API, advanced a bounded step at a time by the scheduler.

replay-missing makes a delivery to the endpoint for each message in the window that it
wants and never had one (say, sent before it existed or while it was disabled);
bulk-replay makes the endpoint's finished deliveries in the window due again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from hookpost.delivery.restart import restart_delivery
from hookpost.kit.ids import ids_made_after, ids_made_before, new_id
from hookpost.kit.time import utcnow
from hookpost.messages.service import MessageFilters, endpoint_wants
from hookpost.replay.schemas import ReplayIn
from hookpost.statistics.counts import Counts, store_counts
from hookpost.storage.models import Attempt, BackgroundTask, Delivery, Endpoint, Message, MessageStatus, TriggerType

REPLAY_MISSING = "endpoint.replay"
BULK_REPLAY = "endpoint.bulk-replay"
STEP = 500  # messages looked at per run, so one large replay cannot starve the scheduler


def start_replay(session: AsyncSession, endpoint: Endpoint, kind: str, data: ReplayIn) -> BackgroundTask:
    filters = data.model_dump(mode="json", by_alias=True, exclude_none=True)
    filters["until"] = (data.until or utcnow()).isoformat()
    task = BackgroundTask(
        id=new_id("qtask"),
        kind=kind,
        data={"endpointId": endpoint.id, "appId": endpoint.app_id, **filters, "replayed": 0},
    )
    session.add(task)
    return task


def _window(data: dict[str, Any], msg_id: Any = Message.id) -> tuple[Any, ...]:
    """The messages created in the task's window; ``msg_id`` (a column holding the message's id)
    bounds the same window, as ids begin with their time: each step's scan starts in it, and on
    PostgreSQL reads only its weeks."""
    since, until = datetime.fromisoformat(data["since"]), datetime.fromisoformat(data["until"])
    return (
        Message.created_at >= since,
        Message.created_at < until,
        msg_id >= ids_made_after("msg", since),
        msg_id < ids_made_before("msg", until),
    )


def _finish_step(task: BackgroundTask, data: dict[str, Any], replayed: int, last: str | None, full: bool) -> None:
    data["replayed"] = data.get("replayed", 0) + replayed
    if last is not None:
        data["cursor"] = last
    if not full:
        task.status = "finished"
    task.data = data
    task.lease_until = None


async def replay_missing_step(session: AsyncSession, task: BackgroundTask) -> None:
    data = dict(task.data)
    endpoint = await session.get(Endpoint, data["endpointId"])
    if endpoint is None:
        task.status, task.data = "failed", {**data, "error": "the endpoint was deleted"}
        return
    had_one = select(Delivery.id).where(Delivery.msg_id == Message.id, Delivery.endpoint_id == endpoint.id).exists()
    query = (
        select(Message)
        .where(Message.app_id == endpoint.app_id, *_window(data), Message.id > data.get("cursor", ""), ~had_one)
        .order_by(Message.id)
        .limit(STEP)
    )
    messages = list((await session.scalars(query)).all())
    now = utcnow()
    wanted = [
        message
        for message in messages
        # A payload already expunged or past its retention cannot be sent again.
        if message.payload and endpoint_wants(endpoint, message.event_type, message.channels)
    ]
    session.add_all(
        Delivery(
            id=new_id("dlv"),
            app_id=endpoint.app_id,
            msg_id=message.id,
            endpoint_id=endpoint.id,
            next_attempt_at=now,
            created_at=now,
        )
        for message in wanted
    )
    _finish_step(task, data, len(wanted), messages[-1].id if messages else None, len(messages) == STEP)


def _bulk_query(data: dict[str, Any]) -> Select[Delivery]:
    query = (
        select(Delivery)
        .join(Message, Message.id == Delivery.msg_id)
        .where(
            Delivery.endpoint_id == data["endpointId"],
            # One still pending goes out anyway: replaying it would only reset its schedule.
            Delivery.status != MessageStatus.PENDING,
            Message.payload != "",
            *_window(data, Delivery.msg_id),
            Delivery.id > data.get("cursor", ""),
        )
        .order_by(Delivery.id)
        .limit(STEP)
    )
    query = MessageFilters(data.get("eventTypes") or (), data.get("channel"), data.get("tag")).apply(query)
    if data.get("status") is not None:
        query = query.where(Delivery.status == data["status"])
    if data.get("statusCodeClass") is not None:
        low = int(data["statusCodeClass"])
        last = aliased(Attempt)  # apart from the Attempt of the inner query, which must not correlate to it
        last_id = (
            select(func.max(Attempt.id)).where(Attempt.delivery_id == Delivery.id).correlate(Delivery).scalar_subquery()
        )
        code = select(last.response_status_code).where(last.id == last_id).correlate(Delivery).scalar_subquery()
        query = query.where(and_(code >= low, code <= (low if low == 0 else low + 99)))
    return query


async def bulk_replay_step(session: AsyncSession, task: BackgroundTask) -> None:
    data = dict(task.data)
    deliveries = list((await session.scalars(_bulk_query(data))).all())
    now = utcnow()
    counts = Counts()
    for delivery in deliveries:
        restart_delivery(delivery, TriggerType.MANUAL, now, counts)
    await store_counts(session, counts)
    last = deliveries[-1].id if deliveries else None
    _finish_step(task, data, len(deliveries), last, len(deliveries) == STEP)
