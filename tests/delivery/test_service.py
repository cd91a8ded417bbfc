"""Delivery state in the database, driven in-process against a real SQLite file and a
real receiver: leases, duplicate tasks, the sweeper and retention."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.due import claim_due_for_queue
from hookpost.delivery.maintenance import purge_expired_content
from hookpost.kit.time import utcnow
from hookpost.settings import Settings
from hookpost.storage.models import Attempt, Delivery, EndedWebSession, Message, MessageStatus
from tests.support.delivery import deliver, deliver_batch, delivery_context
from tests.support.receiver import Receiver


@pytest.fixture
async def context(settings: Settings) -> AsyncIterator[DeliveryContext]:
    async with delivery_context(settings) as context:
        yield context


def _message_to(client: TestClient, url: str) -> str:
    app_id = client.post("/api/v1/app", json={"name": "service"}).json()["id"]
    client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": url})
    msg_id: str = client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "e", "payload": {}}).json()["id"]
    return msg_id


async def _delivery_id(context: DeliveryContext, msg_id: str) -> str:
    async with context.sessionmaker() as session:
        delivery_id: str = await session.scalar(select(Delivery.id).where(Delivery.msg_id == msg_id))
        return delivery_id


async def test_two_tasks_for_one_delivery_send_it_once(
    client: TestClient, context: DeliveryContext, receiver: Receiver
) -> None:
    delivery_id = await _delivery_id(context, _message_to(client, receiver.url + "/once"))
    results = await asyncio.gather(*(deliver(context, delivery_id) for _ in range(4)))

    assert sum(result is not None for result in results) == 1
    assert len(receiver.received("/once")) == 1
    # And once it succeeded, a late duplicate task sends nothing either.
    assert await deliver(context, delivery_id) is None
    assert len(receiver.received("/once")) == 1


async def test_a_crashed_holders_delivery_is_queued_again_when_its_lease_ends(
    client: TestClient, context: DeliveryContext, receiver: Receiver
) -> None:
    delivery_id = await _delivery_id(context, _message_to(client, receiver.url + "/crash"))
    now = utcnow()
    async with context.sessionmaker() as session:
        # A worker claimed it, then died: lease held, task acknowledged or lost.
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(lease_until=now + timedelta(seconds=30), queued_until=None)
        )
        await session.commit()
        assert delivery_id not in await claim_due_for_queue(session, context.settings, 100)
        assert await deliver(context, delivery_id) is None  # held: not ours to send

        await session.execute(
            update(Delivery).where(Delivery.id == delivery_id).values(lease_until=now - timedelta(seconds=1))
        )
        await session.commit()
        assert delivery_id in await claim_due_for_queue(session, context.settings, 100)
        # Queued once: the sweeper does not queue it again while that task waits.
        assert delivery_id not in await claim_due_for_queue(session, context.settings, 100)

    assert (await deliver(context, delivery_id)) is not None
    assert len(receiver.received("/crash")) == 1


async def test_a_task_the_broker_lost_is_queued_again_after_requeue_after(
    client: TestClient, context: DeliveryContext, receiver: Receiver
) -> None:
    delivery_id = await _delivery_id(context, _message_to(client, receiver.url + "/lost"))
    async with context.sessionmaker() as session:
        # The API marked it queued at creation; pretend its publish never reached a worker.
        assert delivery_id not in await claim_due_for_queue(session, context.settings, 100)
        await session.execute(
            update(Delivery).where(Delivery.id == delivery_id).values(queued_until=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
        assert delivery_id in await claim_due_for_queue(session, context.settings, 100)


async def test_retention_purges_old_content_and_keeps_the_record(
    client: TestClient, context: DeliveryContext, receiver: Receiver
) -> None:
    old_msg = _message_to(client, receiver.url + "/old")
    await deliver(context, await _delivery_id(context, old_msg))
    pending_msg = _message_to(client, "http://127.0.0.1:9/never-sent")  # still owed: keeps its payload
    long_ago = utcnow() - timedelta(days=context.settings.retention_days + 1)
    async with context.sessionmaker() as session:
        await session.execute(update(Message).values(created_at=long_ago))
        await session.execute(update(Attempt).values(created_at=long_ago))
        await session.commit()

    assert await purge_expired_content(context.sessionmaker, context.settings) == 1

    async with context.sessionmaker() as session:
        payloads = {row.id: row.payload for row in await session.execute(select(Message.id, Message.payload))}
        assert payloads[old_msg] == ""
        assert payloads[pending_msg] != ""
        attempt = await session.scalar(select(Attempt).where(Attempt.msg_id == old_msg))
        assert attempt is not None
        assert (attempt.response, attempt.response_status_code, attempt.status) == ("", 200, MessageStatus.SUCCESS)


async def test_the_purge_forgets_ended_sessions_once_their_cookies_have_expired(context: DeliveryContext) -> None:
    async with context.sessionmaker() as session:
        session.add(EndedWebSession(session_id="expired", expires_at=utcnow() - timedelta(minutes=1)))
        session.add(EndedWebSession(session_id="live", expires_at=utcnow() + timedelta(hours=1)))
        await session.commit()

    await purge_expired_content(context.sessionmaker, context.settings)

    async with context.sessionmaker() as session:
        assert list(await session.scalars(select(EndedWebSession.session_id))) == ["live"]


async def test_one_batch_settles_each_delivery_on_its_own(
    client: TestClient, context: DeliveryContext, receiver: Receiver
) -> None:
    receiver.script["/fails"] = [(500, {})]
    app_id = client.post("/api/v1/app", json={"name": "batch"}).json()["id"]
    paths = ("/ok", "/fails", "/held", "/disabled")
    endpoints = {
        path: client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": receiver.url + path}).json()["id"]
        for path in paths
    }
    msg_id = client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "e", "payload": {}}).json()["id"]
    client.patch(f"/api/v1/app/{app_id}/endpoint/{endpoints['/disabled']}", json={"disabled": True})
    async with context.sessionmaker() as session:
        rows = await session.execute(select(Delivery.endpoint_id, Delivery.id).where(Delivery.msg_id == msg_id))
        delivery_of = {row.endpoint_id: row.id for row in rows}
        held_until = utcnow() + timedelta(seconds=30)  # another worker holds this one
        await session.execute(
            update(Delivery).where(Delivery.id == delivery_of[endpoints["/held"]]).values(lease_until=held_until)
        )
        await session.commit()

    sent = await deliver_batch(context, list(delivery_of.values()))

    assert sorted(attempt.result.status_code for attempt in sent) == [200, 500]
    assert [r.path for r in receiver.received()] in (["/ok", "/fails"], ["/fails", "/ok"])
    async with context.sessionmaker() as session:
        deliveries = await session.scalars(select(Delivery).where(Delivery.msg_id == msg_id))
        state = {d.endpoint_id: (d.status, d.attempt_count, d.lease_until) for d in deliveries}
        attempts = await session.scalars(select(Attempt.endpoint_id).where(Attempt.msg_id == msg_id))
        assert sorted(attempts) == sorted([endpoints["/ok"], endpoints["/fails"]])
    assert state[endpoints["/ok"]] == (MessageStatus.SUCCESS, 1, None)
    assert state[endpoints["/fails"]][:2] == (MessageStatus.PENDING, 1)  # its retry is scheduled
    assert state[endpoints["/held"]][:2] == (MessageStatus.PENDING, 0)  # still the other worker's
    assert state[endpoints["/held"]][2] is not None
    assert state[endpoints["/disabled"]] == (MessageStatus.PENDING, 0, None)  # kept for re-enabling


async def test_a_task_fills_its_batch_with_other_due_deliveries(
    client: TestClient, context: DeliveryContext, receiver: Receiver
) -> None:
    first = await _delivery_id(context, _message_to(client, receiver.url + "/first"))
    second = await _delivery_id(context, _message_to(client, receiver.url + "/second"))

    sent = await deliver_batch(context, [first])  # the task for the first message...

    assert len(sent) == 2  # ...took the second, due and free, along
    assert {r.path for r in receiver.received()} == {"/first", "/second"}
    # The second message's own task then finds nothing left to do.
    assert await deliver_batch(context, [second]) == []
    assert len(receiver.received()) == 2


async def test_a_batch_keeps_to_the_destination_concurrency(
    client: TestClient, settings: Settings, receiver: Receiver
) -> None:
    receiver.delays["/slow"] = 0.2
    app_id = client.post("/api/v1/app", json={"name": "busy"}).json()["id"]
    for _ in range(12):  # twelve endpoints on one receiver: one server, twelve deliveries per message
        client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": receiver.url + "/slow"})
    client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "e", "payload": {}})
    limited = settings.model_copy(update={"destination_concurrency": 3})
    async with delivery_context(limited) as context:
        async with context.sessionmaker() as session:
            ids = list(await session.scalars(select(Delivery.id)))
        sent = await deliver_batch(context, ids)

    assert [attempt.result.status_code for attempt in sent] == [200] * 12
    assert receiver.most_in_flight == 3
