"""A FIFO endpoint served by real Celery workers (PostgreSQL, Redis, the API under Uvicorn, a
receiver on loopback): every message arrives in order, and a worker killed with SIGKILL
mid-batch costs at most that batch again, never the order."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from hookpost.settings import Settings
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import fresh_postgres_database, upgrade_to_head
from tests.support.eventually import eventually
from tests.support.processes import api_server, celery_worker
from tests.support.receiver import Receiver
from tests.support.services import REDIS_URL, require

pytestmark = pytest.mark.postgres


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    url = require("Redis", REDIS_URL)
    redis.Redis.from_url(url).flushdb()  # no leftover tasks from an earlier run
    with fresh_postgres_database() as database_url:
        settings = make_settings(
            tmp_path,
            database_url=database_url,
            broker_url=url,
            scheduler_interval=0.2,
            poller_settle=0.5,
            delivery_timeout=2.0,
            lease_seconds=3.0,
        )
        upgrade_to_head(settings)
        yield settings


def _delivered(receiver: Receiver) -> list[str]:
    return [item["id"] for request in receiver.requests for item in json.loads(request.body)]


def _without_repeats(batches: list[list[str]]) -> list[str]:
    """The ids as delivered, a batch sent again right after itself counted once."""
    kept: list[list[str]] = []
    for batch in batches:
        if not kept or kept[-1] != batch:
            kept.append(batch)
    return [msg_id for batch in kept for msg_id in batch]


def test_a_killed_worker_costs_a_repeat_never_the_order(settings: Settings, receiver: Receiver) -> None:
    receiver.delays["/fifo"] = 0.3  # a batch is in flight for a while: the kill lands mid-send
    with (
        api_server(settings) as base_url,
        httpx.Client(base_url=f"{base_url}/api/v1", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as api,
    ):
        app_id = api.post("/app", json={"name": "fifo"}).json()["id"]
        made = api.post(
            f"/app/{app_id}/destination",
            json={"type": "fifoEndpoint", "batchSize": 5, "maxWaitSecs": 0, "config": {"url": receiver.url + "/fifo"}},
        )
        assert made.status_code == 201, made.text
        sent = [
            api.post(f"/app/{app_id}/msg", json={"eventType": "e", "payload": {"n": n}}).json()["id"] for n in range(30)
        ]
        with celery_worker(settings, concurrency=1) as worker:
            eventually(lambda: len(receiver.requests) >= 2, "the first batches", timeout=30)
            os.killpg(worker.pid, signal.SIGKILL)  # mid-send: its batch's lease must run out
        with celery_worker(settings, concurrency=1):
            eventually(lambda: set(sent) <= set(_delivered(receiver)), "every message", timeout=60)

    batches = [[item["id"] for item in json.loads(request.body)] for request in receiver.requests]
    assert _without_repeats(batches) == sent
    assert all(len(batch) <= 5 for batch in batches)
