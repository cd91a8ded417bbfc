"""The delivery engine in-process, on a real SQLite file and real receivers on loopback:
one bad delivery fails alone, a slow receiver holds up no other, a stop loses nothing."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.engine import DeliveryEngine
from hookpost.kit.secret_box import SecretBox, new_key
from hookpost.settings import Settings
from hookpost.storage.models import Attempt, Delivery, Endpoint, MessageStatus
from tests.support.delivery import deliver_batch, delivery_context
from tests.support.eventually import eventually_async
from tests.support.receiver import Receiver

# Values httpx refuses to put in a header; the API refuses them too, but rows stored
# before it did must not break a worker.
BAD_HEADER_VALUES = {"/line-separator": "a\u2028b", "/next-line": "a\x85b", "/nul": "a\x00b"}


@pytest.fixture
async def context(settings: Settings) -> AsyncIterator[DeliveryContext]:
    settings = settings.model_copy(update={"destination_concurrency": 2})
    async with delivery_context(settings) as context:
        yield context


@pytest.fixture
def slow_receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def _endpoints(client: TestClient, urls: list[str]) -> tuple[str, list[str]]:
    app_id = client.post("/api/v1/app", json={"name": "engine"}).json()["id"]
    ids = [client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": url}).json()["id"] for url in urls]
    return app_id, ids


def _send(client: TestClient, app_id: str, count: int = 1) -> None:
    for _ in range(count):
        response = client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "e", "payload": {}})
        assert response.status_code == 202, response.text


async def _deliveries(context: DeliveryContext) -> dict[str, Delivery]:
    async with context.sessionmaker() as session:
        return {d.id: d for d in await session.scalars(select(Delivery))}


async def _store_bad_headers(context: DeliveryContext, endpoint_ids: dict[str, str]) -> None:
    async with context.sessionmaker() as session:
        for path, value in BAD_HEADER_VALUES.items():
            await session.execute(
                update(Endpoint).where(Endpoint.id == endpoint_ids[path]).values(headers={"x-custom": value})
            )
        await session.commit()


async def _check_isolated(context: DeliveryContext, receiver: Receiver, endpoint_ids: dict[str, str]) -> None:
    """The healthy delivery succeeded once; each bad one made one failed attempt that says why."""
    assert [r.path for r in receiver.received()] == ["/healthy"]
    async with context.sessionmaker() as session:
        deliveries = {d.endpoint_id: d for d in await session.scalars(select(Delivery))}
        attempts = {a.endpoint_id: a for a in await session.scalars(select(Attempt))}
    assert deliveries[endpoint_ids["/healthy"]].status == MessageStatus.SUCCESS
    for path in BAD_HEADER_VALUES:
        delivery, attempt = deliveries[endpoint_ids[path]], attempts[endpoint_ids[path]]
        assert (delivery.status, delivery.attempt_count, delivery.lease_until) == (MessageStatus.PENDING, 1, None)
        assert attempt.status == MessageStatus.FAIL
        assert attempt.error is not None
        assert attempt.error.startswith("invalid request"), attempt.error
    assert "'x-custom'" in attempts[endpoint_ids["/line-separator"]].error


async def test_a_header_httpx_refuses_fails_only_its_own_delivery(
    client: TestClient, context: DeliveryContext, receiver: Receiver
) -> None:
    paths = ["/healthy", *BAD_HEADER_VALUES]
    app_id, ids = _endpoints(client, [receiver.url + path for path in paths])
    endpoint_ids = dict(zip(paths, ids, strict=True))
    await _store_bad_headers(context, endpoint_ids)
    _send(client, app_id)

    sent = await deliver_batch(context, list(await _deliveries(context)))

    assert sorted(attempt.result.status_code for attempt in sent) == [0, 0, 0, 200]
    await _check_isolated(context, receiver, endpoint_ids)


async def test_the_engine_isolates_a_header_httpx_refuses(
    client: TestClient, context: DeliveryContext, receiver: Receiver
) -> None:
    paths = ["/healthy", *BAD_HEADER_VALUES]
    app_id, ids = _endpoints(client, [receiver.url + path for path in paths])
    endpoint_ids = dict(zip(paths, ids, strict=True))
    await _store_bad_headers(context, endpoint_ids)
    _send(client, app_id)
    engine = DeliveryEngine(context, in_flight_limit=50)
    engine.start()
    engine.nudge(list(await _deliveries(context)))

    async def all_attempted() -> bool:
        return all(d.attempt_count == 1 for d in (await _deliveries(context)).values())

    await eventually_async(all_attempted, "every delivery attempted once", timeout=20.0)
    await engine.stop()
    await _check_isolated(context, receiver, endpoint_ids)


async def test_a_secret_this_process_cannot_decrypt_fails_only_its_own_endpoint(
    client: TestClient, context: DeliveryContext, receiver: Receiver
) -> None:
    app_id, (_, unreadable) = _endpoints(client, [receiver.url + "/readable", receiver.url + "/unreadable"])
    # As a replica started with another HOOKPOST_SECRET_KEY would have stored it.
    foreign = SecretBox([new_key()]).encrypt("whsec_" + "A" * 32)
    async with context.sessionmaker() as session:
        await session.execute(
            text("UPDATE endpoint SET secret = :secret WHERE id = :id"), {"secret": foreign, "id": unreadable}
        )
        await session.commit()
    _send(client, app_id)

    sent = await deliver_batch(context, list(await _deliveries(context)))

    assert sorted(attempt.result.status_code for attempt in sent) == [0, 200]
    assert [r.path for r in receiver.received()] == ["/readable"]
    async with context.sessionmaker() as session:
        attempt = await session.scalar(select(Attempt).where(Attempt.endpoint_id == unreadable))
    assert attempt is not None
    assert attempt.error == "not sent: a stored secret is encrypted with a key not in HOOKPOST_SECRET_KEY"


async def test_a_slow_receiver_does_not_hold_up_the_others(
    client: TestClient, context: DeliveryContext, receiver: Receiver, slow_receiver: Receiver
) -> None:
    slow_receiver.delays["/slow"] = 3.0
    slow_app, _ = _endpoints(client, [slow_receiver.url + "/slow"])
    fast_app, _ = _endpoints(client, [receiver.url + "/fast"])
    _send(client, slow_app, 20)  # ten times what the slow receiver may have in flight
    _send(client, fast_app, 20)
    engine = DeliveryEngine(context, in_flight_limit=10)
    started = time.monotonic()
    engine.start()
    engine.nudge(list(await _deliveries(context)))  # the slow receiver's deliveries first

    await eventually_async(
        lambda: asyncio.sleep(0, len(receiver.received("/fast")) == 20),
        "the fast receiver's 20 deliveries",
        timeout=2.5,
    )
    fast_done = time.monotonic() - started

    # Only the receiver's bound (twice destination_concurrency=2) was held for it, two at a time sending.
    assert fast_done < 2.5, fast_done
    assert slow_receiver.most_in_flight == 2
    assert len(slow_receiver.received("/slow")) <= 2
    await engine.stop()


async def test_a_stop_finishes_sends_in_flight_and_returns_the_rest(
    client: TestClient, context: DeliveryContext, slow_receiver: Receiver
) -> None:
    slow_receiver.delays["/slow"] = 1.0
    app_id, _ = _endpoints(client, [slow_receiver.url + "/slow"])
    _send(client, app_id, 4)  # two sending, two waiting for a slot to the receiver
    engine = DeliveryEngine(context, in_flight_limit=10)
    engine.start()
    engine.nudge(list(await _deliveries(context)))
    await eventually_async(
        lambda: asyncio.sleep(0, slow_receiver.most_in_flight == 2),
        "two sends in flight to the slow receiver",
        timeout=20.0,
    )

    await engine.stop()

    deliveries = list((await _deliveries(context)).values())
    assert engine.in_flight == 0
    assert Counter((d.status, d.attempt_count) for d in deliveries) == {
        (MessageStatus.SUCCESS, 1): 2,  # in flight at the stop: finished and recorded
        (MessageStatus.PENDING, 0): 2,  # not started: no attempt spent
    }
    assert all(d.lease_until is None for d in deliveries)  # the unsent two are free for another worker
    assert len(slow_receiver.received("/slow")) == 2
