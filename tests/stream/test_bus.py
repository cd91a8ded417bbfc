"""The bus and a client's queue on their own: bounds, notices, the file bus between
processes, Redis pub/sub, and publishing that never fails or waits when the transport does."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from hookpost.kit.time import utcnow
from hookpost.stream.bus import FileBus, RedisBus, StreamUnavailable, Subscription
from hookpost.stream.bus import file_bus as file_bus_module
from hookpost.stream.bus import redis_bus as redis_bus_module
from hookpost.stream.events import StreamEvent, attempt_recorded, message_created
from tests.support.processes import free_port
from tests.support.services import REDIS_URL, require

Json = dict[str, object]


def event(app_id: str, number: int) -> StreamEvent:
    return message_created(app_id, f"msg_{number}", "test", None, utcnow())


async def take(subscription: Subscription, count: int, within: float = 10) -> list[Json]:
    async with asyncio.timeout(within):
        return [json.loads(await subscription.get()) for _ in range(count)]


def msg_ids(events: list[Json]) -> list[object]:
    return [item.get("msgId") for item in events]


async def test_a_full_queue_drops_new_events_and_says_how_many_where() -> None:
    subscription = Subscription("app_1", max_queued=3)
    for number in range(5):
        subscription.put(event("app_1", number).text)
    for number in range(5, 8):  # one more gap: counted in the same notice, the queue stays bounded
        subscription.put(event("app_1", number).text)
    assert subscription.dropped == 5
    first = await take(subscription, 4)
    assert msg_ids(first[:3]) == ["msg_0", "msg_1", "msg_2"]
    assert first[3]["type"] == "stream.lagged"
    assert first[3]["dropped"] == 5
    subscription.put(event("app_1", 8).text)
    assert msg_ids(await take(subscription, 1)) == ["msg_8"]


async def test_an_interruption_is_a_notice_of_its_own_in_place() -> None:
    subscription = Subscription("app_1", max_queued=2)
    subscription.put(event("app_1", 0).text)
    subscription.interrupt()
    subscription.put(event("app_1", 1).text)  # the queue is full: this one is dropped
    subscription.put(event("app_1", 2).text)
    got = await take(subscription, 3)
    assert got[0]["msgId"] == "msg_0"
    assert got[1]["type"] == "stream.interrupted"
    assert got[2]["type"] == "stream.lagged"
    assert got[2]["dropped"] == 2


@pytest.fixture
async def file_bus(tmp_path: Path) -> AsyncIterator[Callable[[], FileBus]]:
    made: list[FileBus] = []

    def make() -> FileBus:
        made.append(FileBus(tmp_path / "stream", queue_size=100, poll_interval=0.01))
        return made[-1]

    yield make
    for bus in made:
        await bus.aclose()


async def test_file_bus_delivers_one_apps_events_in_order_and_no_others(file_bus: Callable[[], FileBus]) -> None:
    publisher, subscriber = file_bus(), file_bus()  # as in two processes: nothing shared but files
    publisher.publish(event("app_a", -1))  # before the subscription: never delivered
    async with subscriber.subscribe("app_a") as subscription:
        for number in range(50):
            publisher.publish(event("app_a" if number % 2 else "app_b", number))
        got = await take(subscription, 25)
    assert msg_ids(got) == [f"msg_{number}" for number in range(1, 50, 2)]
    assert {item["appId"] for item in got} == {"app_a"}


async def test_file_bus_reads_a_line_written_to_the_previous_segment_late(
    file_bus: Callable[[], FileBus], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000]
    monkeypatch.setattr(file_bus_module, "_segment_now", lambda: now[0])
    late, on_time, subscriber = file_bus(), file_bus(), file_bus()
    late.publish(event("app_a", 0))  # opens segment 1000 before the subscription
    async with subscriber.subscribe("app_a") as subscription:
        now[0] = 1001
        on_time.publish(event("app_a", 1))  # segment 1001
        assert msg_ids(await take(subscription, 1)) == ["msg_1"]
        now[0] = 1000  # a publisher that took its segment number just before the switch
        late.publish(event("app_a", 2))
        now[0] = 1001
        assert msg_ids(await take(subscription, 1)) == ["msg_2"]


async def test_file_bus_publishers_remove_old_segments(
    file_bus: Callable[[], FileBus], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    now = [1000]
    monkeypatch.setattr(file_bus_module, "_segment_now", lambda: now[0])
    publisher = file_bus()
    for segment in range(1000, 1010):
        now[0] = segment
        publisher.publish(event("app_a", segment))
    left = sorted(path.name for path in (tmp_path / "stream").iterdir())
    assert left == [f"events-{segment}.jsonl" for segment in range(1009 - file_bus_module.KEEP_SEGMENTS, 1010)]


async def test_file_bus_carries_events_from_another_process(file_bus: Callable[[], FileBus], tmp_path: Path) -> None:
    script = f"""
from pathlib import Path
from hookpost.kit.time import utcnow
from hookpost.stream.bus import FileBus
from hookpost.stream.events import attempt_recorded
bus = FileBus(Path({str(tmp_path / "stream")!r}), 10, 0.01)
for n in range(20):
    bus.publish(attempt_recorded(succeeded=True, app_id="app_x", msg_id=f"msg_{{n}}", endpoint_id="ep_1",
                                 attempt_id=f"atmpt_{{n}}", status_code=200, at=utcnow()))
"""
    async with file_bus().subscribe("app_x") as subscription:
        done = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
        assert await done.wait() == 0
        got = await take(subscription, 20, within=30)
    assert [item["attemptId"] for item in got] == [f"atmpt_{number}" for number in range(20)]
    assert {item["type"] for item in got} == {"attempt.succeeded"}


async def test_file_bus_publish_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    bus = FileBus(blocked / "stream", queue_size=10, poll_interval=0.01)
    with caplog.at_level(logging.WARNING, logger="hookpost.stream.bus"):
        for number in range(3):
            bus.publish(event("app_a", number))
    await bus.aclose()
    assert len([r for r in caplog.records if "not written" in r.getMessage()]) == 1  # once, not per event


def redis_url() -> str:
    return require("Redis", REDIS_URL)


@pytest.mark.redis
async def test_redis_bus_delivers_across_instances_and_unsubscribes_when_done() -> None:
    url = redis_url()
    publisher, subscriber = RedisBus(url, queue_size=100), RedisBus(url, queue_size=100)
    try:
        async with subscriber.subscribe("app_r1") as subscription:
            for number in range(30):
                publisher.publish(event("app_r1" if number % 3 else "app_r2", number))
            got = await take(subscription, 20)
            assert msg_ids(got) == [f"msg_{number}" for number in range(30) if number % 3]
        channel = redis_bus_module.CHANNEL_PREFIX + "app_r1"
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while client.pubsub_numsub(channel)[0][1] != 0:  # type: ignore[index]
            assert time.monotonic() < deadline, "still subscribed"
            await asyncio.sleep(0.05)  # polling, bounded by the deadline
        client.close()
    finally:
        await publisher.aclose()
        await subscriber.aclose()


@pytest.mark.redis
async def test_redis_bus_tells_clients_of_a_lost_connection_and_recovers() -> None:
    url = redis_url()
    publisher, subscriber = RedisBus(url, queue_size=100), RedisBus(url, queue_size=100)
    try:
        async with subscriber.subscribe("app_r3") as subscription:
            # Kill the subscriber's pub/sub connection (and only it) from the server side.
            pubsub = subscriber._pubsub
            assert pubsub is not None
            assert pubsub.connection is not None
            host, port = pubsub.connection._writer.get_extra_info("sockname")[:2]  # type: ignore[union-attr]
            client = redis.Redis.from_url(url)
            assert client.client_kill_filter(addr=f"{host}:{port}") == 1
            client.close()
            assert json.loads(await subscription.get())["type"] == "stream.interrupted"
            # Re-subscribed: events flow again (publish until one arrives).
            deadline = time.monotonic() + 20
            number = 0
            while True:
                publisher.publish(event("app_r3", number))
                try:
                    async with asyncio.timeout(0.2):
                        got = json.loads(await subscription.get())
                    break
                except TimeoutError:
                    assert time.monotonic() < deadline, "no event after reconnecting"
                    number += 1
            assert got["appId"] == "app_r3"
    finally:
        await publisher.aclose()
        await subscriber.aclose()


async def test_redis_bus_unreachable_publish_returns_at_once_and_subscribe_refuses(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(redis_bus_module, "SUBSCRIBE_TIMEOUT", 1.0)
    url = urlunsplit(urlsplit(REDIS_URL)._replace(netloc=f"127.0.0.1:{free_port()}"))  # nobody listens
    bus = RedisBus(url, queue_size=10)
    started = time.monotonic()
    for number in range(100):
        bus.publish(attempt_recorded(succeeded=True, app_id="a", msg_id=str(number), endpoint_id="e",
                                     attempt_id="t", status_code=200, at=utcnow()))  # fmt: skip
    assert time.monotonic() - started < 0.5
    async with asyncio.timeout(5):
        await bus.flush()  # every publish given up on, within the publish timeout
    with pytest.raises(StreamUnavailable):
        async with bus.subscribe("app_u"):
            pass
    await bus.aclose()
    assert any("not published" in record.getMessage() for record in caplog.records)
