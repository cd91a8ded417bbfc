"""The live stream across processes, as the issue asks: two Gunicorn workers, clients on
both, messages created through both and delivered by a real Celery worker. Every client
gets every event of its application and none of another's; a client that stops reading
while a flood of events is published for its application slows nobody down, and is told
how many events it missed (or is closed by the server).

Once on PostgreSQL + Redis (pub/sub), once on the embedded default (SQLite, filesystem
broker, the file bus in the data directory), smaller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from hookpost.settings import Settings
from hookpost.stream.bus import create_event_bus
from hookpost.stream.events import StreamEvent
from tests.api.helpers import unique
from tests.conftest import make_settings
from tests.stream.support import (
    Stack,
    StreamClient,
    api_client,
    flood_event,
    hookpost_stack,
    make_app,
    read_after_stall,
    subscribe,
    subscribe_spread,
)
from tests.support.databases import fresh_postgres_database
from tests.support.receiver import Receiver
from tests.support.services import REDIS_URL, require

QUEUE_SIZE = 64  # per client (HOOKPOST_STREAM_QUEUE_SIZE), small so the stalled client overflows it
# ~8 MB for the busy application: more than the kernel holds for a client that does not read
# (about 4 MB on loopback), so the stalled client's queue overflows; its readers keep up.
FLOOD_EVENTS = 1000
FLOOD_PADDING = 8000
# The flood runs at most this many events ahead of the slowest reading client, so it measures
# the stream, not how fast this test process reads; the stalled client falls behind regardless.
FLOOD_WINDOW = 32
DELIVERY_DEADLINE = 60.0  # from the first message sent to the last event at the last client (loaded CI)


@dataclass(frozen=True)
class Scale:
    clients_per_app: int
    messages: int  # in all, alternating between the two applications


@pytest.mark.postgres
@pytest.mark.redis
def test_two_gunicorn_workers_on_postgres_and_redis(tmp_path: Path, receiver: Receiver) -> None:
    # A Redis database of its own: its queue is shared with no other test's worker.
    broker_url = urlunsplit(urlsplit(require("Redis", REDIS_URL))._replace(path="/13"))
    redis.Redis.from_url(broker_url).flushdb()
    try:
        with fresh_postgres_database() as database_url:
            settings = make_settings(
                tmp_path, database_url=database_url, broker_url=broker_url, stream_queue_size=QUEUE_SIZE
            )
            assert settings.redis_url == broker_url  # the stream's bus: Redis pub/sub
            with hookpost_stack(settings) as stack:
                asyncio.run(fan_out(stack, receiver, Scale(clients_per_app=10, messages=200)))
    finally:
        redis.Redis.from_url(broker_url).flushdb()


def test_two_api_workers_on_the_embedded_default(tmp_path: Path, receiver: Receiver) -> None:
    settings = make_settings(tmp_path, stream_queue_size=QUEUE_SIZE)
    assert settings.is_sqlite
    assert not settings.redis_url  # the stream's bus: files in the data dir
    with hookpost_stack(settings) as stack:
        asyncio.run(fan_out(stack, receiver, Scale(clients_per_app=3, messages=40)))
    assert list((tmp_path / "stream").glob("events-*.jsonl")), "the file bus left no segment"


async def fan_out(stack: Stack, receiver: Receiver, scale: Scale) -> None:
    opened: list[StreamClient] = []
    try:
        await _fan_out(stack, receiver, scale, opened)
    finally:
        for client in opened:  # a client left open would hold its API worker's shutdown
            client.abort()


async def _fan_out(stack: Stack, receiver: Receiver, scale: Scale, opened: list[StreamClient]) -> None:
    async with api_client(stack) as api:
        apps = [await make_app(api, unique(f"stream-{name}"), f"{receiver.url}/{name}") for name in "ab"]
        clients: dict[str, list[StreamClient]] = {}
        for app in apps:
            clients[app] = await subscribe_spread(stack, app, scale.clients_per_app)
            opened += clients[app]
        # A third application gets a flood of large events, published on the bus as a worker
        # would: two clients read it, one stops reading after its hello. Its API worker also
        # serves clients of the first two, which must not notice.
        busy = await make_app(api, unique("stream-busy"), f"{receiver.url}/busy")
        readers = await subscribe_spread(stack, busy, 2)
        opened += readers
        stalled = await subscribe(stack, busy, stalled=True)
        opened.append(stalled)
        sent: dict[str, list[str]] = {app: [] for app in apps}

        async def send(number: int) -> None:
            app = apps[number % 2]
            response = await api.post(f"/app/{app}/msg", json={"eventType": "stream.test", "payload": {"n": number}})
            assert response.status_code == 202, response.text
            sent[app].append(response.json()["id"])

        started = time.monotonic()
        deadline = started + DELIVERY_DEADLINE
        # The flood and the messages at once: the stalled client's connection fills up while
        # the messages' events fan out through the same API workers.
        flooding = asyncio.create_task(flood(stack.settings, busy, readers, deadline))
        await asyncio.gather(*(send(number) for number in range(scale.messages)))
        for app in apps:
            for client in clients[app]:
                await client.wait_for(everything(sent[app]), deadline=deadline, what=f"pid {client.pid}, {app}")
        print(f"every event at all {len(apps) * scale.clients_per_app} clients {time.monotonic() - started:.1f}s")
        await flooding
        for reader in readers:
            await reader.wait_for(flooded(FLOOD_EVENTS), deadline=deadline, what=f"flood at pid {reader.pid}")
        print(f"and the flood at its readers {time.monotonic() - started:.1f}s")

        for app in apps:
            for client in clients[app]:
                assert_exactly(client, sent[app])
            assert len({client.pid for client in clients[app]}) == 2  # served by both API workers
        for reader in readers:
            assert reader.kinds == {"test.flood": FLOOD_EVENTS}
            assert [event["n"] for event in reader.events] == list(range(FLOOD_EVENTS))  # in order
        assert stalled.pid in {client.pid for client in clients[apps[0]]}

        received, dropped, close_code = await read_after_stall(stalled, FLOOD_EVENTS, deadline=time.monotonic() + 30)
        print(f"stalled client: {received} received, {dropped} reported dropped, close code {close_code}")
        assert dropped > 0 or close_code != 0, "the stalled client neither got a lagged notice nor was closed"
        if close_code == 0:
            assert received + dropped == FLOOD_EVENTS


async def flood(settings: Settings, app_id: str, readers: list[StreamClient], deadline: float) -> None:
    """Large events for the app, published on the bus from this process, as a worker would."""
    bus = create_event_bus(settings)
    try:
        for number in range(FLOOD_EVENTS):
            if number >= FLOOD_WINDOW:
                await bus.flush()
                for reader in readers:
                    await reader.wait_for(
                        flooded(number - FLOOD_WINDOW + 1), deadline=deadline, what=f"flood at pid {reader.pid}"
                    )
            bus.publish(StreamEvent(app_id, flood_event(app_id, number, FLOOD_PADDING)))
        async with asyncio.timeout(30):
            await bus.flush()
    finally:
        await bus.aclose()


def flooded(at_least: int) -> Callable[[StreamClient], bool]:
    return lambda client: client.kinds["test.flood"] >= at_least


def everything(msg_ids: list[str]) -> Callable[[StreamClient], bool]:
    """As many events of each type as there should be (``assert_exactly`` checks which)."""
    return lambda client: (
        client.kinds["message.created"] >= len(msg_ids) and client.kinds["attempt.succeeded"] >= len(msg_ids)
    )


def assert_exactly(client: StreamClient, msg_ids: list[str]) -> None:
    """Each event once, all of its own application, in the documented shapes, and nothing else."""
    assert client.kinds == {"message.created": len(msg_ids), "attempt.succeeded": len(msg_ids)}, client.kinds
    assert {event["appId"] for event in client.events} == {client.app_id}
    created = [event for event in client.events if event["type"] == "message.created"]
    assert sorted(event["msgId"] for event in created) == sorted(msg_ids)
    for event in created:
        assert event["eventType"] == "stream.test", event
        assert event["timestamp"].endswith("Z"), event
    succeeded = [event for event in client.events if event["type"] == "attempt.succeeded"]
    assert sorted(event["msgId"] for event in succeeded) == sorted(msg_ids)
    for event in succeeded:
        assert event["statusCode"] == 200, event
        assert event["endpointId"].startswith("ep_"), event
        assert event["attemptId"].startswith("atmpt_"), event
