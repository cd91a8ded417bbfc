"""Retention that removes rows, on SQLite and on PostgreSQL's daily partitions: what is past
``retention_days`` goes (404 like any unknown message), what is still owed a delivery stays
whole until its last delivery ends, and endpoint stats keep their counts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update

from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.retention import delete_expired, remove_expired_history
from hookpost.kit.ids import first_id_at
from hookpost.kit.time import utcnow
from hookpost.settings import Settings
from hookpost.storage import partitions
from hookpost.storage.models import Attempt, Delivery, FifoLease, Message, MessageStatus
from tests.support.delivery import deliver, delivery_context
from tests.support.receiver import Receiver


@pytest.fixture
def settings(settings_per_database: Settings) -> Settings:
    return settings_per_database


@pytest.fixture
async def context(settings: Settings) -> AsyncIterator[DeliveryContext]:
    async with delivery_context(settings) as context:
        yield context


async def _age(context: DeliveryContext, msg_id: str, days: float, offset_ms: int = 0) -> str:
    """Give the message (and its deliveries and attempts) an id and time from ``days`` ago, as
    if it had been sent then; on PostgreSQL the rows move to that week's partition, made here
    as the upkeep would have made it then. Returns the new id."""
    then = utcnow() - timedelta(days=days)
    old_id = first_id_at("msg", int(then.timestamp() * 1000) + offset_ms)
    async with context.sessionmaker() as session:
        if not context.settings.is_sqlite:
            for statement in partitions.create_period_statements(then.date()):
                await session.execute(text(statement))
        await session.execute(update(Message).where(Message.id == msg_id).values(id=old_id, created_at=then))
        await session.execute(update(Delivery).where(Delivery.msg_id == msg_id).values(msg_id=old_id))
        await session.execute(update(Attempt).where(Attempt.msg_id == msg_id).values(msg_id=old_id))
        await session.commit()
    return old_id


async def _count(context: DeliveryContext, model: type[Message | Delivery | Attempt], msg_id: str) -> int:
    column = Message.id if model is Message else model.msg_id  # type: ignore[union-attr]
    async with context.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(column == msg_id)) or 0)


async def _delivery_of(context: DeliveryContext, msg_id: str) -> str:
    async with context.sessionmaker() as session:
        delivery_id: str = await session.scalar(select(Delivery.id).where(Delivery.msg_id == msg_id))
        return delivery_id


async def test_retention_removes_the_past_and_keeps_what_is_still_owed(
    client: TestClient, context: DeliveryContext, receiver: Receiver
) -> None:
    app_id = client.post("/api/v1/app", json={"name": "history"}).json()["id"]
    ok = client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": receiver.url + "/ok"}).json()["id"]
    send = {"eventType": "e", "payload": {}}
    delivered = client.post(f"/api/v1/app/{app_id}/msg", json=send).json()["id"]
    await deliver(context, await _delivery_of(context, delivered))
    # A second endpoint that refuses: the next message is still retrying at the boundary.
    client.patch(f"/api/v1/app/{app_id}/endpoint/{ok}", json={"disabled": True})
    client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": "http://127.0.0.1:9/refused"})
    retrying = client.post(f"/api/v1/app/{app_id}/msg", json=send).json()["id"]
    await deliver(context, await _delivery_of(context, retrying))
    recent = client.post(f"/api/v1/app/{app_id}/msg", json=send).json()["id"]
    past = context.settings.retention_days + 8  # its whole week is past the retention too
    delivered = await _age(context, delivered, past)
    retrying = await _age(context, retrying, past, offset_ms=1)  # the same week as the delivered one

    removed = await remove_expired_history(context.sessionmaker, context.settings)

    # Past the retention and settled: gone, as unknown as a message that never was.
    assert client.get(f"/api/v1/app/{app_id}/msg/{delivered}").status_code == 404
    assert [await _count(context, model, delivered) for model in (Message, Delivery, Attempt)] == [0, 0, 0]
    # Still owed a delivery: kept whole, with its delivery and attempt, and still retried.
    assert client.get(f"/api/v1/app/{app_id}/msg/{retrying}").status_code == 200
    assert [await _count(context, model, retrying) for model in (Message, Delivery, Attempt)] == [1, 1, 1]
    assert client.get(f"/api/v1/app/{app_id}/msg/{recent}").status_code == 200
    # The counts are the history: the endpoint's stats still count the removed delivery.
    assert client.get(f"/api/v1/app/{app_id}/endpoint/{ok}/stats").json()["success"] == 1
    if not context.settings.is_sqlite:
        assert (removed.weeks_dropped, removed.weeks_kept) == (0, 1)  # its week is kept for the owed one

    # Its last attempt fails: nothing is owed any more, and the next run removes it.
    async with context.sessionmaker() as session:
        await session.execute(update(Delivery).where(Delivery.msg_id == retrying).values(status=MessageStatus.FAIL))
        await session.commit()
    removed = await remove_expired_history(context.sessionmaker, context.settings)

    assert client.get(f"/api/v1/app/{app_id}/msg/{retrying}").status_code == 404
    assert [await _count(context, model, retrying) for model in (Message, Delivery, Attempt)] == [0, 0, 0]
    assert client.get(f"/api/v1/app/{app_id}/msg/{recent}").status_code == 200
    if not context.settings.is_sqlite:
        assert removed.weeks_dropped == 1  # the whole week, now that nothing in it is owed
        async with context.sessionmaker() as session:
            weeks = await partitions.existing_periods(await session.connection())
        assert weeks == partitions.periods_ahead(utcnow().date())  # this week and the next ones, made ahead


async def test_retention_keeps_what_a_fifo_destination_has_not_delivered(
    client: TestClient, context: DeliveryContext
) -> None:
    """A FIFO destination disabled for longer than the retention still owes what came after its
    position: kept until it has delivered them (what it delivered, and other applications', go)."""
    app_id = client.post("/api/v1/app", json={"name": "fifo"}).json()["id"]
    other_app = client.post("/api/v1/app", json={"name": "no destination"}).json()["id"]
    fifo = {"type": "fifoEndpoint", "status": "disabled", "config": {"url": "http://127.0.0.1:9/batches"}}
    destination_id = client.post(f"/api/v1/app/{app_id}/destination", json=fifo).json()["id"]
    send = {"eventType": "e", "payload": {}}
    sent = [client.post(f"/api/v1/app/{app_id}/msg", json=send).json()["id"] for _ in range(3)]
    elsewhere = client.post(f"/api/v1/app/{other_app}/msg", json=send).json()["id"]
    past = context.settings.retention_days + 8  # their whole week is past the retention
    delivered = await _age(context, sent[0], past)
    owed = [await _age(context, msg_id, past, offset_ms=n) for n, msg_id in enumerate(sent[1:], start=1)]
    elsewhere = await _age(context, elsewhere, past, offset_ms=3)  # the same week as the owed ones
    # The destination delivered the first message, then was disabled for all this time.
    async with context.sessionmaker() as session:
        session.add(FifoLease(destination_id=destination_id, position=delivered, attempt_count=0))
        await session.commit()

    removed = await remove_expired_history(context.sessionmaker, context.settings)

    assert [await _count(context, Message, msg_id) for msg_id in (delivered, *owed, elsewhere)] == [0, 1, 1, 0]
    assert [client.get(f"/api/v1/app/{app_id}/msg/{msg_id}").status_code for msg_id in owed] == [200, 200]
    if not context.settings.is_sqlite:
        assert (removed.weeks_dropped, removed.weeks_kept) == (0, 1)  # its week thinned, not dropped

    # Enabled again, it delivers the first owed one: that one goes at the next run, the other stays.
    async with context.sessionmaker() as session:
        await session.execute(update(FifoLease).values(position=owed[0]))
        await session.commit()
    await remove_expired_history(context.sessionmaker, context.settings)
    assert [await _count(context, Message, msg_id) for msg_id in owed] == [0, 1]

    # Deleted, the destination owes nothing: its week goes whole.
    client.delete(f"/api/v1/app/{app_id}/destination/{destination_id}")
    removed = await remove_expired_history(context.sessionmaker, context.settings)
    assert await _count(context, Message, owed[1]) == 0
    if not context.settings.is_sqlite:
        assert removed.weeks_dropped == 1


async def test_deletes_go_in_small_batches(client: TestClient, context: DeliveryContext) -> None:
    app_id = client.post("/api/v1/app", json={"name": "batches"}).json()["id"]
    client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": "http://127.0.0.1:9/"})
    ids = [
        client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "e", "payload": {}}).json()["id"] for _ in "abcde"
    ]
    async with context.sessionmaker() as session:  # settled: nothing owed
        await session.execute(update(Delivery).values(status=MessageStatus.FAIL))
        await session.commit()
    aged = [await _age(context, msg_id, 40, offset_ms=n) for n, msg_id in enumerate(ids)]

    assert (
        await delete_expired(context.sessionmaker, first_id_at("msg", int(utcnow().timestamp() * 1000)), batch=2) == 5
    )

    assert [await _count(context, Message, msg_id) for msg_id in aged] == [0] * 5


async def test_a_repeat_from_an_earlier_day_answers_with_the_original(
    client: TestClient, context: DeliveryContext
) -> None:
    app_id = client.post("/api/v1/app", json={"name": "repeats"}).json()["id"]
    body = {"eventType": "e", "payload": {}, "eventId": "order-1"}
    first = client.post(f"/api/v1/app/{app_id}/msg", json=body).json()["id"]
    first = await _age(context, first, 3)  # sent three days ago: another partition on PostgreSQL

    again = client.post(f"/api/v1/app/{app_id}/msg", json=body)

    assert again.json()["id"] == first
    async with context.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Message).where(Message.event_id == "order-1")) == 1
