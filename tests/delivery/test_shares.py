"""Each application's share of a worker: one application's hanging endpoints, many receivers
or backlog never hold back another application's deliveries (in-process engine, real
SQLite file, real receivers and servers that never answer, on loopback)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.engine import DeliveryEngine
from hookpost.settings import Settings
from hookpost.storage.models import Delivery
from tests.support.delivery import delivery_context
from tests.support.receiver import Receiver

HTTP_TIMEOUT = 8.0  # seconds a hanging receiver holds a send


@pytest.fixture
async def context(settings: Settings) -> AsyncIterator[DeliveryContext]:
    settings = settings.model_copy(update={"destination_concurrency": 2, "application_in_flight": 6})
    async with delivery_context(settings, HTTP_TIMEOUT) as context:
        yield context


class Hanging:
    """Ten servers on ten ports (ten receivers, as far as a worker can tell) that accept a
    connection and never answer."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.held: list[asyncio.StreamWriter] = []


@pytest.fixture
async def hanging() -> AsyncIterator[Hanging]:
    servers = Hanging()
    held = servers.held

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    async with AsyncExitStack() as stack:
        for _ in range(10):
            server = await asyncio.start_server(hold, "127.0.0.1", 0)
            stack.push_async_callback(server.wait_closed)
            stack.callback(server.close)
            servers.urls.append(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook")
        yield servers
        for writer in held:
            writer.close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    with ExitStack() as stack:
        yield [stack.enter_context(Receiver()) for _ in range(5)]


def _application(client: TestClient, urls: list[str]) -> str:
    app_id: str = client.post("/api/v1/app", json={"name": "tenant"}).json()["id"]
    for url in urls:
        assert client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": url}).status_code == 201
    return app_id


def _send(client: TestClient, app_id: str, count: int) -> None:
    for _ in range(count):
        response = client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "e", "payload": {}})
        assert response.status_code == 202, response.text


async def _delivery_ids(context: DeliveryContext, app_id: str) -> list[str]:
    async with context.sessionmaker() as session:
        found = await session.scalars(select(Delivery.id).where(Delivery.app_id == app_id).order_by(Delivery.id))
        return list(found)


async def _within(seconds: float, check: Callable[[], bool]) -> float:
    """How long ``check`` took to hold; fails once ``seconds`` have passed without it."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds}s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_hanging_endpoints_of_one_application_leave_room_for_another(
    client: TestClient, context: DeliveryContext, hanging: Hanging, receiver: Receiver
) -> None:
    hanging_app = _application(client, hanging.urls)
    _send(client, hanging_app, 3)  # 30 deliveries that never get an answer: more than the worker's room
    fast_app = _application(client, [receiver.url + "/fast"])
    _send(client, fast_app, 5)
    engine = DeliveryEngine(context, in_flight_limit=20)
    engine.start()
    engine.nudge(await _delivery_ids(context, hanging_app))  # the hanging application first
    engine.nudge(await _delivery_ids(context, fast_app))

    # Without its own share the fast application would wait for the hanging sends' timeout.
    await _within(HTTP_TIMEOUT / 2, lambda: len(receiver.received("/fast")) == 5)
    assert len(hanging.held) == context.settings.application_in_flight  # its share, and no more
    for writer in hanging.held:
        writer.close()  # the hanging sends fail now, and the engine can stop
    await engine.stop()


async def test_a_backlog_on_many_receivers_leaves_room_for_another_application(
    client: TestClient, context: DeliveryContext, receivers: list[Receiver], receiver: Receiver
) -> None:
    for busy in receivers:
        busy.delays["/busy"] = 0.2
    busy_app = _application(client, [busy.url + "/busy" for busy in receivers])
    _send(client, busy_app, 40)  # 200 deliveries, 0.2 s each: 2 s at the whole worker's room
    other_app = _application(client, [receiver.url + "/other"])
    _send(client, other_app, 1)
    engine = DeliveryEngine(context, in_flight_limit=20)
    engine.start()
    engine.nudge(await _delivery_ids(context, busy_app))
    engine.nudge(await _delivery_ids(context, other_app))

    def busy_received() -> int:
        return sum(len(busy.received("/busy")) for busy in receivers)

    await _within(HTTP_TIMEOUT, lambda: len(receiver.received("/other")) == 1)
    # Its one delivery went out long before the backlog ahead of it in the nudges was done.
    assert busy_received() < 100, busy_received()
    await _within(30, lambda: busy_received() == 200)
    await engine.stop()
