"""Outages seen from the delivery side: the worker and the scheduler while the database
is down, and then back.

Both ride it out: no process dies or restarts, each says so in a few log lines (not one
per attempt, per second or per delivery), and once the database is back they resume on
their own. Every message the API acknowledged, before, during or after, reaches the
receiver.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hookpost.settings import Settings
from hookpost.storage.migrate import upgrade_to_head
from tests.conftest import make_settings
from tests.support.own_services import OwnPostgres, OwnRedis, own_postgres, own_redis
from tests.support.processes import api_server, running
from tests.support.receiver import Receiver
from tests.support.traffic import AUTH, JsonLog, Writer, wait_for

DATABASE_TIMEOUT = 2.0
OUTAGE_SECONDS = 8.0
LEASE_SECONDS = 30.0  # longer than the outage: a send made before it is recorded after it, not made again
# What a process may log about one outage, whatever its length: a line when it starts,
# one when it ends, and a few for work that was under way when it struck.
COMPLAINTS_PER_PROCESS = 6


@dataclass
class Stack:
    settings: Settings
    postgres: OwnPostgres
    broker: OwnRedis
    base_url: str
    worker: subprocess.Popen[bytes]
    scheduler: subprocess.Popen[bytes]
    receiver: Receiver

    @property
    def worker_log(self) -> JsonLog:
        return JsonLog(self.settings.data_dir / "worker.log")

    @property
    def scheduler_log(self) -> JsonLog:
        return JsonLog(self.settings.data_dir / "scheduler.log")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """PostgreSQL and Redis of the test's own; the API, a worker and the scheduler as in production."""
    hookpost = [sys.executable, "-m", "hookpost"]
    with ExitStack() as stack:
        postgres = stack.enter_context(own_postgres())
        broker = stack.enter_context(own_redis(tmp_path))
        settings = make_settings(
            tmp_path,
            database_url=postgres.url,
            broker_url=broker.url,
            database_timeout=DATABASE_TIMEOUT,
            delivery_timeout=5.0,
            lease_seconds=LEASE_SECONDS,
            requeue_after=5.0,
            scheduler_interval=0.5,
            log_format="json",
        )
        upgrade_to_head(settings)
        receiver = stack.enter_context(Receiver())
        base_url = stack.enter_context(api_server(settings))
        worker = stack.enter_context(running([*hookpost, "worker", "--concurrency", "2"], settings, "worker"))
        scheduler = stack.enter_context(running([*hookpost, "scheduler"], settings, "scheduler"))
        yield Stack(settings, postgres, broker, base_url, worker, scheduler, receiver)


def delivered(receiver: Receiver) -> Counter[str]:
    return Counter(request.headers["webhook-id"] for request in receiver.received())


def test_workers_ride_out_a_database_outage_and_deliver_everything(stack: Stack) -> None:
    with httpx.Client(base_url=stack.base_url, headers=AUTH, timeout=30) as client:
        app_id = client.post("/api/v1/app", json={"name": "Worker outage"}).json()["id"]
        endpoint = client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": f"{stack.receiver.url}/hook"})
        assert endpoint.status_code == 201, endpoint.text
        writer = Writer(stack.base_url, app_id, timeout=DATABASE_TIMEOUT * 4)
        with writer.running(threads=2):
            wait_for(lambda: len(delivered(stack.receiver)) >= 20, 60, "20 deliveries before the outage")
            marks = (stack.worker_log.mark(), stack.scheduler_log.mark())
            stack.postgres.crash()
            crashed_at = time.monotonic()
            wait_for(lambda: client.get("/readyz").status_code == 503, 30, "readiness failing")
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - crashed_at)))  # the outage's length
            stack.postgres.start()
            restarted_at = time.monotonic()
            answers = len(writer.outcomes)
            wait_for(lambda: any(o.status == 202 for o in writer.answers_since(answers)), 60, "a 202 after")
            wait_for(lambda: len(writer.answers_since(answers)) >= 40, 30, "40 more answers after")
        wait_for(lambda: client.get("/readyz").status_code == 200, 30, "readiness back")

        accepted = set(writer.accepted)
        wait_for(lambda: accepted <= set(delivered(stack.receiver)), 120, "every accepted message delivered")
        resumed_in = time.monotonic() - restarted_at

    assert stack.worker.poll() is None, "the worker died"
    assert stack.scheduler.poll() is None, "the scheduler died"
    worker_complaints = stack.worker_log.complaints(marks[0])
    scheduler_complaints = stack.scheduler_log.complaints(marks[1])
    pool_processes = {record.get("pid") for record in stack.worker_log.records(marks[0])}
    duplicates = sum(n - 1 for n in delivered(stack.receiver).values())
    print(
        f"\nworker outage: {len(accepted)} accepted, all delivered {resumed_in:.1f} s after the restart; "
        f"{duplicates} duplicates; "
        f"worker said {len(worker_complaints)} warning lines, scheduler {len(scheduler_complaints)}"
    )
    assert len(worker_complaints) <= COMPLAINTS_PER_PROCESS * 3, [r.get("message") for r in worker_complaints]
    assert len(scheduler_complaints) <= COMPLAINTS_PER_PROCESS, [r.get("message") for r in scheduler_complaints]
    assert not [r for r in worker_complaints if "exited" in str(r.get("message"))], "a pool process died"
    assert len(pool_processes) <= 3, pool_processes  # the main process and its two pool processes, no new ones
    # Sends finished during the outage were recorded after it, within their lease: none made twice.
    assert duplicates == 0
