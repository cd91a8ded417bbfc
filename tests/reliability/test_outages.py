"""Outages: the database or the broker goes away mid-run and comes back.

The database down: the API answers 503 with Retry-After (no other 5xx, no connection
reset, never slower than its timeout), readiness fails, and once the database is back
every message that was acknowledged is there. The broker down: messages are still
accepted, since the database holds them, and the scheduler queues them as soon as the
broker is back.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import select

from hookpost.delivery.celery_app import QUEUE, create_celery
from hookpost.delivery.scheduler import Scheduler
from hookpost.settings import Settings
from hookpost.storage.database import create_engine, create_sessionmaker
from hookpost.storage.models import Delivery
from tests.conftest import make_settings
from tests.support.databases import upgrade_to_head
from tests.support.eventually import eventually
from tests.support.own_services import OwnPostgres, own_postgres, own_redis
from tests.support.processes import api_server
from tests.support.traffic import AUTH, Writer

DATABASE_TIMEOUT = 2.0


@pytest.fixture
def postgres() -> Iterator[OwnPostgres]:
    with own_postgres() as server:
        yield server


def test_a_database_outage_is_503_and_loses_nothing_acknowledged(postgres: OwnPostgres, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=postgres.url, database_timeout=DATABASE_TIMEOUT)
    upgrade_to_head(settings)
    with api_server(settings) as base_url, httpx.Client(base_url=base_url, headers=AUTH, timeout=30) as client:
        app_id = client.post("/api/v1/app", json={"name": "Outage"}).json()["id"]
        writer = Writer(base_url, app_id, timeout=DATABASE_TIMEOUT * 4)
        with writer.running(threads=2):
            eventually(lambda: len(writer.accepted) >= 20, "20 messages before the outage", timeout=30)
            before = len(writer.outcomes)
            postgres.crash()
            eventually(lambda: any(o.status == 503 for o in writer.outcomes[before:]), "a 503", timeout=30)
            ready = client.get("/readyz")
            listed = client.get(f"/api/v1/app/{app_id}/msg")
            time.sleep(4)  # the outage itself: its length is the point, not a wait for readiness
            postgres.start()
            after_restart = len(writer.outcomes)
            eventually(lambda: any(o.status == 202 for o in writer.outcomes[after_restart:]), "a 202 after", timeout=60)
            eventually(lambda: len(writer.outcomes) >= after_restart + 20, "20 more answers after", timeout=30)

        statuses = Counter(outcome.status for outcome in writer.outcomes)
        assert set(statuses) <= {202, 503}, statuses
        assert statuses[503] > 0, statuses
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "failing"
        assert listed.status_code == 503
        assert listed.headers["retry-after"]
        assert listed.json()["code"] == "service_unavailable"
        for outcome in writer.outcomes:
            if outcome.status == 503:
                assert outcome.retry_after is not None
                assert outcome.seconds < DATABASE_TIMEOUT * 2 + 1, outcome
        assert client.get("/readyz").status_code == 200

        # Every message acknowledged, before, during and after, is stored.
        for msg_id in writer.accepted:
            assert client.get(f"/api/v1/app/{app_id}/msg/{msg_id}").status_code == 200, msg_id
        slowest = max(outcome.seconds for outcome in writer.outcomes if outcome.status == 503)
        print(f"\noutage figures: {dict(statuses)}, slowest 503 {slowest:.2f} s")


def test_a_database_that_stops_answering_is_503_within_the_timeouts(postgres: OwnPostgres, tmp_path: Path) -> None:
    """Frozen rather than gone: connections stay open and nothing answers. Every request
    still ends within the connect or statement timeout, as a 503."""
    statement_timeout = 3.0
    settings = make_settings(
        tmp_path,
        database_url=postgres.url,
        database_timeout=DATABASE_TIMEOUT,
        database_statement_timeout=statement_timeout,
    )
    upgrade_to_head(settings)
    bound = statement_timeout + DATABASE_TIMEOUT + 2  # a stale pooled connection, then a new one
    with api_server(settings) as base_url, httpx.Client(base_url=base_url, headers=AUTH, timeout=60) as client:
        app_id = client.post("/api/v1/app", json={"name": "Frozen"}).json()["id"]
        accepted = [client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "a", "payload": {}}) for _ in range(5)]
        postgres.freeze()
        try:
            timed: list[tuple[httpx.Response, float]] = []
            for request in (
                lambda: client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "a", "payload": {}}),
                lambda: client.get(f"/api/v1/app/{app_id}/msg"),
                lambda: client.get(f"/api/v1/app/{app_id}"),
            ):
                started = time.monotonic()
                timed.append((request(), time.monotonic() - started))
            ready = client.get("/readyz")
        finally:
            postgres.thaw()

        for response, seconds in timed:
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"]
            assert seconds < bound, seconds
        assert ready.status_code == 503
        eventually(
            lambda: client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "a", "payload": {}}).status_code == 202,
            "a 202 after the thaw",
            timeout=60,
        )
        for response in accepted:
            assert client.get(f"/api/v1/app/{app_id}/msg/{response.json()['id']}").status_code == 200
        print(f"\nfrozen database: answers in {[round(seconds, 2) for _, seconds in timed]} s (bound {bound} s)")


def test_the_broker_down_still_accepts_messages_and_the_scheduler_queues_them_once_it_is_back(
    tmp_path: Path,
) -> None:
    with own_redis(tmp_path) as broker:
        settings: Settings = make_settings(tmp_path, broker_url=broker.url)
        upgrade_to_head(settings)
        with api_server(settings) as base_url, httpx.Client(base_url=base_url, headers=AUTH, timeout=30) as client:
            app_id = client.post("/api/v1/app", json={"name": "Broker down"}).json()["id"]
            client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": "https://127.0.0.1:9/hook"})
            broker.stop()

            answers = [
                client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "a", "payload": {"n": n}})
                for n in range(20)
            ]

            assert [answer.status_code for answer in answers] == [202] * 20
            assert client.get("/readyz").status_code == 503
            listed = client.get(f"/api/v1/app/{app_id}/msg", params={"limit": 50}).json()["data"]
            assert {message["id"] for message in listed} == {answer.json()["id"] for answer in answers}
            # The API could not publish them: it hands them to the scheduler's next tick
            # instead of leaving them marked queued for requeue_after (60 s).
            eventually(lambda: not asyncio.run(_marked_queued(settings)), "unpublished deliveries unmarked", timeout=30)

        broker.start()  # empty
        started = time.monotonic()
        with _scheduler_running(settings):
            eventually(lambda: len(_delivery_ids_in_broker(broker.url)) >= 20, "the 20 deliveries queued", timeout=30)
        print(f"\nbroker back: the scheduler queued the 20 deliveries in {time.monotonic() - started:.1f} s")


async def _marked_queued(settings: Settings) -> list[str]:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            return list(await session.scalars(select(Delivery.id).where(Delivery.queued_until.is_not(None))))
    finally:
        await engine.dispose()


def _delivery_ids_in_broker(broker_url: str) -> set[str]:
    """The delivery ids of the tasks waiting in the broker (Celery's message protocol 2)."""
    found: set[str] = set()
    for raw in redis.Redis.from_url(broker_url).lrange(QUEUE, 0, -1):  # type: ignore[union-attr]
        args, _kwargs, _embed = json.loads(base64.b64decode(json.loads(raw)["body"]))
        found.update(args[0])
    return found


@contextmanager
def _scheduler_running(settings: Settings) -> Iterator[None]:
    """``hookpost scheduler``'s loop, on a thread of this test."""
    scheduler = Scheduler(settings, create_celery(settings, with_tasks=False))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(scheduler.run(),))
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(scheduler.stop)
        thread.join(timeout=30)
        loop.close()
