"""The API's dispatcher, publishing to a real broker (the embedded one, in the test's data dir)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

# Loaded before any thread runs: the dispatcher loads Celery in its own thread at its first
# publish, and two threads importing the celery package at once can see it half made.
import celery  # noqa: F401
from kombu import Queue

from hookpost.delivery.celery_app import QUEUE, create_celery
from hookpost.delivery.dispatcher import Dispatcher
from hookpost.settings import Settings
from tests.conftest import make_settings

INTERVAL = 5.0  # far longer than anything below takes, so only pacing can explain a shared task


def _published(settings: Settings, count: int, timeout: float) -> list[list[str]]:
    """The delivery ids of the next ``count`` send_deliveries tasks, waiting up to ``timeout``,
    read as a worker would: from an app of its own."""
    tasks: list[list[str]] = []
    deadline = time.monotonic() + timeout
    with create_celery(settings).connection_for_read() as connection:
        queue = Queue(QUEUE, channel=connection.default_channel)
        while len(tasks) < count:
            assert time.monotonic() < deadline, f"only {len(tasks)} of {count} tasks published: {tasks}"
            # basic_get: exactly one message or none, nothing prefetched and held back.
            message = queue.get(no_ack=True)
            if message is None:
                time.sleep(0.05)  # polling interval, bounded by the deadline
                continue
            args, _kwargs, _embed = message.decode()
            tasks.append(args[0])
    return tasks


async def test_a_lone_delivery_goes_at_once_and_a_burst_shares_one_task(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    dispatcher = Dispatcher(lambda: create_celery(settings), batch_size=50, interval=INTERVAL)
    dispatcher.start()

    dispatcher.submit(["dlv_a"])
    # Published without waiting out the interval: nothing was published before it.
    assert await asyncio.to_thread(_published, settings, 1, INTERVAL / 2) == [["dlv_a"]]

    dispatcher.submit(["dlv_b"])
    await asyncio.sleep(0.05)  # the burst's second message arrives a little later
    dispatcher.submit(["dlv_c", "dlv_d"])
    await dispatcher.stop()  # publishes what is waiting

    assert await asyncio.to_thread(_published, settings, 1, INTERVAL / 2) == [["dlv_b", "dlv_c", "dlv_d"]]


async def test_a_batch_larger_than_the_batch_size_is_split(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    dispatcher = Dispatcher(lambda: create_celery(settings), batch_size=2, interval=0)
    dispatcher.start()
    dispatcher.submit(["dlv_1", "dlv_2", "dlv_3"])
    await dispatcher.stop()

    # Two publishes within a millisecond may be read in either order.
    assert sorted(await asyncio.to_thread(_published, settings, 2, 5.0)) == [["dlv_1", "dlv_2"], ["dlv_3"]]
