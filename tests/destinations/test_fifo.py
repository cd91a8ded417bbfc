"""FIFO endpoints delivered by the in-process runner (delivery/fifo.py) on a real SQLite file to a
real receiver on loopback: the application's messages in the order accepted, in batches of up to
batchSize sent when full or once maxWaitSecs old, signed with the destination's secret; a failing
batch repeated (the same messages) with nothing after it sent meanwhile; two runners at once on
one destination never out of order."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from standardwebhooks import Webhook

from hookpost.app import create_app
from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.fifo import FifoRunner
from hookpost.delivery.maintenance import purge_expired_content
from hookpost.delivery.ratelimit import create_rate_limiter
from hookpost.delivery.sender import create_http_client
from hookpost.kit.time import utcnow
from hookpost.settings import Settings
from hookpost.storage.database import create_engine, create_sessionmaker
from hookpost.storage.models import DestinationAttempt, Message, MessageStatus
from tests.api.helpers import Json, declare_event_types, expect
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import fresh_postgres_database, upgrade_to_head
from tests.support.eventually import eventually_async
from tests.support.receiver import ReceivedRequest, Receiver

KEY = "whsec_" + "C" * 32
PATH = "/fifo"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Messages handed out as soon as committed; retries a tenth of a second apart, four attempts."""
    return settings.model_copy(update={"poller_settle": 0.0, "retry_schedule": [0.0, 0.1, 0.1, 0.1]})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


async def _context(settings: Settings) -> tuple[DeliveryContext, Callable[[], Any]]:
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    http = create_http_client(5.0, settings.allowed_networks)
    context = DeliveryContext(settings, sessionmaker, http, create_rate_limiter(settings, sessionmaker))

    async def close() -> None:
        await http.aclose()
        await engine.dispose()

    return context, close


@pytest.fixture
async def context(settings: Settings) -> AsyncIterator[DeliveryContext]:
    made, close = await _context(settings)
    yield made
    await close()


def fifo(client: TestClient, app_id: str, receiver: Receiver, **fields: Any) -> Json:
    config = {"url": receiver.url + PATH, "key": KEY, "headers": {"X-Team": "a"}}
    body = {"type": "fifoEndpoint", "config": config, "batchSize": 3, "maxWaitSecs": 0, **fields}
    return expect(client.post(f"/api/v1/app/{app_id}/destination", json=body), 201)


def send(client: TestClient, app_id: str, count: int, event_type: str = "e", **fields: Any) -> list[str]:
    return [
        expect(
            client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": event_type, "payload": {"n": n}, **fields}),
            202,
        )["id"]
        for n in range(count)
    ]


def batches(receiver: Receiver) -> list[list[str]]:
    return [[item["id"] for item in json.loads(request.body)] for request in receiver.requests]


async def drive(runners: list[FifoRunner], done: Callable[[], bool], timeout: float = 20.0) -> None:  # noqa: ASYNC109 - a deadline, then a clear failure
    """Tick the runners (as the scheduler's nudges would) until ``done``; then let their batches finish."""

    async def done_or_ticked() -> bool:
        if done():
            return True
        await asyncio.gather(*(runner.tick() for runner in runners))
        return False

    await eventually_async(done_or_ticked, f"done: {done}", timeout=timeout, interval=0.02)
    for runner in runners:
        await runner.wait_idle()


def received(receiver: Receiver, count: int) -> Callable[[], bool]:
    return lambda: sum(map(len, batches(receiver))) >= count


async def test_batches_go_in_order_full_and_signed(
    client: TestClient, app_id: str, receiver: Receiver, context: DeliveryContext
) -> None:
    destination = fifo(client, app_id, receiver)
    sent = send(client, app_id, 7)
    runner = FifoRunner(context)

    await drive([runner], received(receiver, 7))
    assert await runner.tick() == 0  # all delivered: an idle destination is not even leased

    assert batches(receiver) == [sent[:3], sent[3:6], sent[6:]]
    first: ReceivedRequest = receiver.requests[0]
    items = json.loads(first.body)
    assert items[0]["eventType"] == "e"
    assert items[0]["payload"] == {"n": 0}
    assert items[0]["timestamp"]
    assert first.headers["x-team"] == "a"
    assert first.headers["webhook-id"] == f"{sent[0]}.{sent[2]}"
    # Verifies with the destination's own secret, as a receiver would.
    Webhook(KEY).verify(first.body, first.headers)
    shown = expect(client.get(f"/api/v1/app/{app_id}/destination/{destination['id']}"), 200)
    assert (shown["status"], shown["failureReason"]) == ("enabled", None)


async def test_a_partial_batch_waits_for_max_wait_secs(
    client: TestClient, app_id: str, receiver: Receiver, context: DeliveryContext
) -> None:
    fifo(client, app_id, receiver, batchSize=10, maxWaitSecs=1)
    accepted = time.time()
    sent = send(client, app_id, 2)

    await drive([FifoRunner(context)], received(receiver, 2))

    assert batches(receiver) == [sent]
    assert receiver.requests[0].received_at - accepted >= 1.0


async def test_a_failing_batch_is_repeated_and_nothing_after_it_goes_out(
    client: TestClient, app_id: str, receiver: Receiver, context: DeliveryContext, settings: Settings
) -> None:
    receiver.script[PATH] = [(500, {}), (503, {})]
    destination = fifo(client, app_id, receiver, batchSize=2)
    sent = send(client, app_id, 4)

    await drive([FifoRunner(context)], received(receiver, 8))

    # The same batch, the same messages and webhook-id, until it succeeds; only then the next.
    assert batches(receiver) == [sent[:2], sent[:2], sent[:2], sent[2:]]
    assert len({request.headers["webhook-id"] for request in receiver.requests[:3]}) == 1
    async with context.sessionmaker() as session:
        attempts = (await session.scalars(select(DestinationAttempt).order_by(DestinationAttempt.id))).all()
    assert [(a.destination_id, a.response_status_code, a.status) for a in attempts] == [
        (destination["id"], 500, MessageStatus.FAIL),
        (destination["id"], 503, MessageStatus.FAIL),
        (destination["id"], 200, MessageStatus.SUCCESS),
        (destination["id"], 200, MessageStatus.SUCCESS),
    ]
    assert [(a.first_msg_id, a.last_msg_id, a.message_count) for a in attempts[2:]] == [
        (sent[0], sent[1], 2),
        (sent[2], sent[3], 2),
    ]
    listed = expect(
        client.get(f"/api/v1/app/{app_id}/destination/{destination['id']}/attempt", params={"limit": 3}), 200
    )
    assert [(a["responseStatusCode"], a["status"], a["firstMsgId"]) for a in listed["data"]] == [
        (200, 0, sent[2]),
        (200, 0, sent[0]),
        (503, 2, sent[0]),
    ]
    assert listed["data"][2]["error"] == "HTTP 503"
    assert listed["data"][0]["timestamp"]
    older = expect(
        client.get(
            f"/api/v1/app/{app_id}/destination/{destination['id']}/attempt", params={"iterator": listed["iterator"]}
        ),
        200,
    )
    assert [a["responseStatusCode"] for a in older["data"]] == [500]


async def test_a_batch_waiting_for_its_retry_shows_as_retrying(
    client: TestClient, app_id: str, receiver: Receiver, settings: Settings
) -> None:
    receiver.script[PATH] = [(500, {})]
    destination = fifo(client, app_id, receiver, batchSize=2)
    sent = send(client, app_id, 4)
    context, close = await _context(settings.model_copy(update={"retry_schedule": [0.0, 600.0]}))
    try:
        runner = FifoRunner(context)
        await drive([runner], lambda: len(receiver.requests) >= 1)
        await runner.tick()  # the retry is not due: nothing goes out, the next batch neither
        await runner.wait_idle()
    finally:
        await close()

    shown = expect(client.get(f"/api/v1/app/{app_id}/destination/{destination['id']}"), 200)
    assert shown["status"] == "retrying"
    assert shown["failureReason"] == f"the batch {sent[0]} to {sent[1]} failed (attempt 1): HTTP 500"
    assert shown["nextRetryAt"] is not None
    assert batches(receiver) == [sent[:2]]


async def test_spent_retries_disable_the_destination_and_enabling_it_resends_the_batch(
    client: TestClient, app_id: str, receiver: Receiver, context: DeliveryContext
) -> None:
    receiver.fail_first = 4  # the whole schedule: four attempts
    destination = fifo(client, app_id, receiver, batchSize=2)
    path = f"/api/v1/app/{app_id}/destination/{destination['id']}"
    sent = send(client, app_id, 3)
    runner = FifoRunner(context)

    await drive([runner], lambda: len(receiver.requests) >= 4)  # then stopped: the last attempt is recorded

    shown = expect(client.get(path), 200)
    assert shown["status"] == "disabled"
    assert "(attempt 4)" in shown["failureReason"]
    assert "HTTP 500" in shown["failureReason"]
    assert batches(receiver) == [sent[:2]] * 4
    await runner.tick()
    await runner.wait_idle()
    assert len(receiver.requests) == 4  # disabled: nothing goes out

    expect(client.patch(path, json={"type": "fifoEndpoint", "status": "enabled"}), 200)
    await drive([runner], received(receiver, 11))
    assert batches(receiver) == [sent[:2]] * 5 + [sent[2:]]
    assert (client.get(path).json()["status"], client.get(path).json()["failureReason"]) == ("enabled", None)


async def test_two_runners_at_once_never_send_out_of_order(
    client: TestClient, app_id: str, receiver: Receiver, context: DeliveryContext, settings: Settings
) -> None:
    receiver.delays[PATH] = 0.05
    receiver.script[PATH] = [(500, {})]
    fifo(client, app_id, receiver, batchSize=2)
    sent = send(client, app_id, 10)
    other, close_other = await _context(settings)
    try:
        await drive([FifoRunner(context), FifoRunner(other)], received(receiver, 12))
    finally:
        await close_other()

    assert receiver.most_in_flight == 1  # one sender at a time: the lease
    assert batches(receiver) == [sent[:2], *(sent[n : n + 2] for n in range(0, 10, 2))]


async def test_a_slow_receiver_holds_up_only_its_own_destination(
    client: TestClient, app_id: str, receiver: Receiver, context: DeliveryContext
) -> None:
    receiver.delays["/slow"] = 2.0
    fifo(client, app_id, receiver, config={"url": receiver.url + "/slow", "key": KEY})
    fifo(client, app_id, receiver, batchSize=1)
    sent = send(client, app_id, 3)
    runner = FifoRunner(context)

    await drive([runner], lambda: len([r for r in receiver.requests if r.path == PATH]) >= 3)

    # Every batch of the fast one went out while the slow one's first batch was still unanswered.
    fast = [r for r in receiver.requests if r.path == PATH]
    slow = [r for r in receiver.requests if r.path == "/slow"]
    assert [json.loads(r.body)[0]["id"] for r in fast] == sent
    assert len(slow) == 1
    assert fast[-1].received_at < slow[0].received_at + 2.0


async def test_after_a_rotation_both_secrets_sign(
    client: TestClient, app_id: str, receiver: Receiver, context: DeliveryContext
) -> None:
    destination = fifo(client, app_id, receiver)
    path = f"/api/v1/app/{app_id}/destination/{destination['id']}/secret/rotate"
    new_key = expect(client.post(path, json={}), 200)["key"]
    send(client, app_id, 1)

    await drive([FifoRunner(context)], received(receiver, 1))

    request = receiver.requests[0]
    Webhook(new_key).verify(request.body, request.headers)
    Webhook(KEY).verify(request.body, request.headers)  # the old one, for the grace period


async def test_credentials_in_the_url_go_as_basic_auth(
    client: TestClient, app_id: str, receiver: Receiver, context: DeliveryContext
) -> None:
    with_credentials = receiver.url.replace("http://", "http://ledger:s%40cret@") + PATH
    made = fifo(client, app_id, receiver, config={"url": with_credentials, "key": KEY})
    assert "s%40cret" not in json.dumps(made)
    send(client, app_id, 1)

    await drive([FifoRunner(context)], received(receiver, 1))

    assert receiver.requests[0].headers["authorization"] == "Basic " + base64.b64encode(b"ledger:s@cret").decode()


async def test_the_address_check_applies_when_sending(
    client: TestClient, app_id: str, receiver: Receiver, settings: Settings
) -> None:
    destination = fifo(client, app_id, receiver)
    send(client, app_id, 1)
    # A worker that does not allow loopback (the API did when the destination was made).
    context, close = await _context(settings.model_copy(update={"allowed_networks": []}))
    try:
        runner = FifoRunner(context)
        assert await runner.tick() == 1
        await runner.wait_idle()
    finally:
        await close()

    assert receiver.requests == []
    shown = expect(client.get(f"/api/v1/app/{app_id}/destination/{destination['id']}"), 200)
    assert shown["status"] == "retrying"
    assert "destination refused" in shown["failureReason"]


async def test_filters_apply_and_other_applications_messages_never_go(
    client: TestClient, app_id: str, receiver: Receiver, context: DeliveryContext
) -> None:
    other_app = expect(client.post("/api/v1/app", json={"name": "other"}), 201)["id"]
    declare_event_types(client, "wanted")
    fifo(client, app_id, receiver, batchSize=10, eventTypes=["wanted"], channels=["eu"])
    send(client, other_app, 2, "wanted", channels=["eu"])
    send(client, app_id, 2, "unwanted", channels=["eu"])
    send(client, app_id, 2, "wanted", channels=["us"])
    wanted = send(client, app_id, 2, "wanted", channels=["eu"])

    runner = FifoRunner(context)
    await drive([runner], received(receiver, 2))
    await runner.tick()  # one more round: nothing else is waiting
    await runner.wait_idle()

    assert batches(receiver) == [wanted]


@pytest.mark.postgres
def test_two_runners_in_order_on_postgresql(tmp_path: Path, receiver: Receiver) -> None:
    """The same on PostgreSQL, where leases are taken with SKIP LOCKED and the poller's horizon
    also waits for the oldest open write."""
    receiver.delays[PATH] = 0.05
    receiver.script[PATH] = [(500, {})]
    with fresh_postgres_database() as database_url:
        settings = make_settings(
            tmp_path, database_url=database_url, poller_settle=0.0, retry_schedule=[0.0, 0.1, 0.1, 0.1]
        )
        upgrade_to_head(settings)
        with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
            app_id = expect(client.post("/api/v1/app", json={"name": "pg"}), 201)["id"]
            fifo(client, app_id, receiver, batchSize=2)
            sent = send(client, app_id, 6)

            async def run_two() -> None:
                (first, close_first), (second, close_second) = await _context(settings), await _context(settings)
                try:
                    await drive([FifoRunner(first), FifoRunner(second)], received(receiver, 8))
                finally:
                    await close_first()
                    await close_second()

            asyncio.run(run_two())

    assert receiver.most_in_flight == 1
    assert batches(receiver) == [sent[:2], sent[:2], sent[2:4], sent[4:]]


async def test_a_stopping_runner_finishes_its_batch_and_leaves_the_backlog(
    client: TestClient, app_id: str, receiver: Receiver, context: DeliveryContext
) -> None:
    receiver.delays[PATH] = 0.3
    fifo(client, app_id, receiver, batchSize=2)
    sent = send(client, app_id, 6)
    runner = FifoRunner(context)
    await runner.tick()
    # The first batch arrives; the receiver thinks for 0.3 s.
    await eventually_async(lambda: asyncio.sleep(0, bool(receiver.requests)), "a batch sent", interval=0.01)

    await runner.stop()

    assert batches(receiver) == [sent[:2]]  # finished and recorded; not the next ones
    assert await runner.tick() == 0  # a stopped runner takes nothing
    await drive([FifoRunner(context)], received(receiver, 6))  # the next holder goes on at once
    assert batches(receiver) == [sent[:2], sent[2:4], sent[4:]]


@pytest.mark.parametrize("then", ["retrying", "disabled"])
async def test_retention_keeps_a_payload_until_the_fifo_destination_has_delivered_it(
    client: TestClient, app_id: str, receiver: Receiver, context: DeliveryContext, then: str
) -> None:
    destination = fifo(client, app_id, receiver, batchSize=1)
    first, second = send(client, app_id, 2)
    receiver.script[PATH] = [(200, {}), (500, {})]  # the first delivered; the second failing
    runner = FifoRunner(context)
    await drive([runner], lambda: len(receiver.requests) >= 2)
    if then == "disabled":  # enabled again, it sends the second: its payload must still be there
        path = f"/api/v1/app/{app_id}/destination/{destination['id']}"
        expect(client.patch(path, json={"type": "fifoEndpoint", "status": "disabled"}), 200)
    long_ago = utcnow() - timedelta(days=context.settings.retention_days + 1)
    async with context.sessionmaker() as session:
        await session.execute(update(Message).values(created_at=long_ago))
        await session.execute(update(DestinationAttempt).values(created_at=long_ago))
        await session.commit()

    assert await purge_expired_content(context.sessionmaker, context.settings) == 1

    async with context.sessionmaker() as session:
        payloads = {row.id: row.payload for row in await session.execute(select(Message.id, Message.payload))}
        responses = (await session.scalars(select(DestinationAttempt.response))).all()
    assert (payloads[first], payloads[second]) == ("", '{"n":1}')  # the second is still owed
    assert set(responses) == {""}
