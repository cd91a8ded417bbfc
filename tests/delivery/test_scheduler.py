"""The scheduler on a real SQLite file and the real filesystem broker: idle it publishes
nothing, and two replicas queue a due delivery once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import update

from hookpost.delivery.celery_app import DELIVER_FIFO, create_celery
from hookpost.delivery.scheduler import Scheduler
from hookpost.kit.time import utcnow
from hookpost.settings import Settings
from hookpost.storage.database import create_engine, create_sessionmaker
from hookpost.storage.models import Delivery


def _published(settings: Settings) -> list[Path]:
    return sorted((settings.broker_dir / "queue").glob("*.msg"))


async def _make_all_due(settings: Settings) -> None:
    """As if the API's publish never reached a worker and ``requeue_after`` has passed."""
    engine = create_engine(settings)
    async with create_sessionmaker(engine)() as session:
        await session.execute(update(Delivery).values(queued_until=utcnow(), next_attempt_at=utcnow()))
        await session.commit()
    await engine.dispose()


async def test_an_idle_scheduler_publishes_nothing(settings: Settings) -> None:
    scheduler = Scheduler(settings, create_celery(settings, with_tasks=False))
    for _ in range(3):
        await scheduler.tick()
    assert _published(settings) == []


async def test_two_replicas_queue_a_due_delivery_once(client: TestClient, settings: Settings) -> None:
    app_id = client.post("/api/v1/app", json={"name": "sched"}).json()["id"]
    client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": "http://127.0.0.1:9/x"})
    client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "e", "payload": {}})
    deadline = time.monotonic() + 10
    while not (already := set(_published(settings))):  # the API's own publish, from its thread
        assert time.monotonic() < deadline, "the API published no task"
        await asyncio.sleep(0.02)
    await _make_all_due(settings)
    replicas = [Scheduler(settings, create_celery(settings, with_tasks=False)) for _ in range(2)]

    await asyncio.gather(*(replica.tick() for replica in replicas))
    await asyncio.gather(*(replica.tick() for replica in replicas))

    new = [path for path in _published(settings) if path not in already]
    assert len(new) == 1  # queued once, and not again while its task waits


async def test_a_tick_nudges_the_workers_while_a_fifo_destination_is_enabled(
    client: TestClient, settings: Settings
) -> None:
    app_id = client.post("/api/v1/app", json={"name": "fifo"}).json()["id"]
    made = client.post(
        f"/api/v1/app/{app_id}/destination",
        json={"type": "pollingEndpoint"},  # pulled, never pushed: no nudge for it
    )
    assert made.status_code == 201, made.text
    scheduler = Scheduler(settings, create_celery(settings, with_tasks=False))
    await scheduler.tick()
    assert _published(settings) == []

    fifo = client.post(
        f"/api/v1/app/{app_id}/destination",
        json={"type": "fifoEndpoint", "config": {"url": "http://127.0.0.1:9/fifo"}},
    ).json()
    await scheduler.tick()
    assert [path.read_text().count(DELIVER_FIFO) > 0 for path in _published(settings)] == [True]

    client.patch(f"/api/v1/app/{app_id}/destination/{fifo['id']}", json={"type": "fifoEndpoint", "status": "disabled"})
    await scheduler.tick()
    assert len(_published(settings)) == 1  # disabled: nothing to serve
