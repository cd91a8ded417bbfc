"""The chaos test: at-least-once delivery while the stack is being broken.

PostgreSQL, a Redis of the test's own (so it can be restarted), two Gunicorn workers, two
Celery worker processes, the scheduler, and a receiver on loopback that keeps a ledger.
While messages go in, one Celery worker and one Gunicorn worker are SIGKILLed and Redis
is restarted empty. Every message the API acknowledged with 202 must reach both
endpoints at least once, and a FIFO destination (fifoEndpoint) in order: a batch may arrive
again, never out of order, and nothing is skipped.

No deadline is fixed in seconds: the test fails for loss, never for a slow machine. It waits
as long as deliveries keep arriving, and fails only when none has arrived for longer than
the stack can rightly stay quiet. That quiet limit is derived from the run: twice the sum of
the stack's own timers (a killed worker's lease, a lost task's requeue, the longest retry
gap, two scheduler ticks), plus four times the longest pause between deliveries measured
so far in this run on this machine. Once every retry of a message is spent, nothing more
arrives, so a lost message ends the wait within that limit; the drain rate measured is printed.
Sending is watched the same way (a stall, not a time, fails it).

    uv run pytest tests/chaos -s                                  # 2,000 messages (CI)
    HOOKPOST_CHAOS_MESSAGES=20000 uv run pytest tests/chaos -s    # the larger run
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from hookpost.settings import Settings
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import fresh_postgres_database, upgrade_to_head
from tests.support.own_services import OwnRedis, own_redis
from tests.support.processes import free_port, running, wait_until_healthy
from tests.support.receiver import Receiver

MESSAGES = int(os.environ.get("HOOKPOST_CHAOS_MESSAGES", "2000"))
SENDERS = 8
PATHS = ("/a", "/b")
FIFO_PATH = "/fifo"


def children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


@dataclass
class Ledger:
    acknowledged: set[str] = field(default_factory=set)
    refused: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def fifo_order(batches: list[list[str]]) -> list[str]:
    """The ids a FIFO destination received, each batch that came again counted once (a repeat is
    allowed, a reordering is not: the test checks what this leaves is in id order)."""
    seen: set[tuple[str, ...]] = set()
    kept: list[str] = []
    for batch in batches:
        if tuple(batch) not in seen:
            seen.add(tuple(batch))
            kept.extend(batch)
    return kept


def send_all(base_url: str, app_id: str, ledger: Ledger, count: int) -> None:
    """``count`` messages from SENDERS threads; what came back 202 goes in the ledger."""

    def sender(share: range) -> None:
        with httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30) as client:
            for number in share:
                try:
                    response = client.post(
                        f"/api/v1/app/{app_id}/msg", json={"eventType": "chaos", "payload": {"n": number}}
                    )
                except httpx.HTTPError as exc:
                    with ledger.lock:
                        ledger.refused[type(exc).__name__] += 1
                    continue
                with ledger.lock:
                    if response.status_code == 202:
                        ledger.acknowledged.add(response.json()["id"])
                    else:
                        ledger.refused[f"HTTP {response.status_code}"] += 1

    threads = [threading.Thread(target=sender, args=(range(i, count, SENDERS),)) for i in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class Progress:
    """A count that should keep rising: when it last rose, and the longest pause between rises."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.last_rise = time.monotonic()
        self.longest_pause = 0.0

    def update(self, count: int) -> bool:
        """Take the latest count; True if it rose."""
        if count <= self.count:
            return False
        now = time.monotonic()
        self.longest_pause = max(self.longest_pause, now - self.last_rise)
        self.count, self.last_rise = count, now
        return True

    def quiet_for(self) -> float:
        return time.monotonic() - self.last_rise


class QuietLimit:
    """How long the stack may rightly deliver nothing (the module's docstring says why)."""

    def __init__(self, settings: Settings) -> None:
        timers = (
            settings.lease_seconds
            + settings.requeue_after
            + max(settings.retry_schedule)
            + 2 * settings.scheduler_interval
        )
        self.floor = 2 * timers
        self.longest_pause = 0.0

    def saw_pause(self, seconds: float) -> None:
        self.longest_pause = max(self.longest_pause, seconds)

    def limit(self) -> float:
        return self.floor + 4 * self.longest_pause


@pytest.fixture
def chaos_stack(tmp_path: Path) -> Iterator[tuple[Settings, OwnRedis]]:
    with fresh_postgres_database() as database_url, own_redis(tmp_path) as server:
        settings = make_settings(
            tmp_path,
            database_url=database_url,
            broker_url=server.url,
            retry_schedule=[0, 1, 2, 4, 8, 16, 32],
            scheduler_interval=0.5,
            requeue_after=5.0,  # how soon a task lost with Redis is queued again
            delivery_timeout=5.0,
            lease_seconds=15.0,  # how soon a killed worker's deliveries are taken over
        )
        upgrade_to_head(settings)
        yield settings, server


def test_every_acknowledged_message_reaches_every_endpoint_through_crashes(
    chaos_stack: tuple[Settings, OwnRedis],
) -> None:
    settings, server = chaos_stack
    hookpost = [sys.executable, "-m", "hookpost"]
    port = free_port()
    with (
        Receiver() as receiver,
        running(
            [*hookpost, "api", "--workers", "2", "--host", "127.0.0.1", "--port", str(port)], settings, "api"
        ) as api,
        running([*hookpost, "worker", "--concurrency", "2"], settings, "worker-1") as worker_1,
        running([*hookpost, "worker", "--concurrency", "2"], settings, "worker-2"),
        running([*hookpost, "scheduler"], settings, "scheduler"),
    ):
        base_url = f"http://127.0.0.1:{port}"
        wait_until_healthy(base_url, api, timeout=120)
        admin = httpx.Client(base_url=f"{base_url}/api/v1", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
        app_id = admin.post("/app", json={"name": "chaos"}).json()["id"]
        for path in PATHS:
            assert admin.post(f"/app/{app_id}/endpoint", json={"url": receiver.url + path}).status_code == 201
        fifo = {"type": "fifoEndpoint", "batchSize": 50, "maxWaitSecs": 0, "config": {"url": receiver.url + FIFO_PATH}}
        assert admin.post(f"/app/{app_id}/destination", json=fifo).status_code == 201

        ledger = Ledger()
        sending = threading.Thread(target=send_all, args=(base_url, app_id, ledger, MESSAGES))
        started = time.monotonic()
        sending.start()

        quiet = QuietLimit(settings)

        def when_acknowledged(fraction: float) -> None:
            progress = Progress(len(ledger.acknowledged))
            while len(ledger.acknowledged) < fraction * MESSAGES and sending.is_alive():
                progress.update(len(ledger.acknowledged))
                assert progress.quiet_for() < quiet.limit(), f"sending stalled: no 202 for {quiet.limit():.0f}s"
                time.sleep(0.02)  # polling interval

        faults: list[str] = []
        when_acknowledged(0.25)
        os.kill(worker_1.pid, signal.SIGKILL)
        faults.append(f"SIGKILL celery worker {worker_1.pid} at {len(ledger.acknowledged)} acknowledged")
        when_acknowledged(0.5)
        gunicorn_worker = children(api.pid)[0]
        os.kill(gunicorn_worker, signal.SIGKILL)
        faults.append(f"SIGKILL gunicorn worker {gunicorn_worker} at {len(ledger.acknowledged)} acknowledged")
        when_acknowledged(0.75)
        server.stop()
        server.start()
        faults.append(f"restarted redis empty at {len(ledger.acknowledged)} acknowledged")
        sending.join()
        sent_in = time.monotonic() - started

        def fifo_batches() -> list[list[str]]:
            return [[item["id"] for item in json.loads(r.body)] for r in receiver.received(FIFO_PATH)]

        def delivered() -> int:
            """Acknowledged messages delivered, counted once per endpoint and once at the FIFO destination."""
            fifo_ids = {msg_id for batch in fifo_batches() for msg_id in batch}
            return len(ledger.acknowledged & fifo_ids) + sum(
                len(ledger.acknowledged & {r.headers["webhook-id"] for r in receiver.received(path)}) for path in PATHS
            )

        wanted = len(ledger.acknowledged) * (len(PATHS) + 1)
        drain_started, delivered_at_start = time.monotonic(), delivered()
        progress = Progress(delivered_at_start)
        # Bounded by progress, not by a clock: each pass either sees a delivery or comes nearer
        # the quiet limit, which fails the test.
        while progress.count < wanted and progress.quiet_for() < quiet.limit():
            time.sleep(0.5)  # polling interval
            if progress.update(delivered()):
                quiet.saw_pause(progress.longest_pause)
        all_in = time.monotonic() - started
        drain_seconds = time.monotonic() - drain_started
        drain_rate = (progress.count - delivered_at_start) / max(drain_seconds, 1e-9)

        counts = {path: Counter(r.headers["webhook-id"] for r in receiver.received(path)) for path in PATHS}
        missing = {path: len(ledger.acknowledged - set(counts[path])) for path in PATHS}
        duplicates = {path: sum(n - 1 for n in counts[path].values() if n > 1) for path in PATHS}
        batches = fifo_batches()
        in_fifo_order = fifo_order(batches)
        print(
            f"\nchaos: {'; '.join(faults)}\n"
            f"chaos: sent={MESSAGES} acknowledged={len(ledger.acknowledged)} refused={dict(ledger.refused)}\n"
            f"chaos: delivered={ {p: len(c) for p, c in counts.items()} } missing={missing} duplicates={duplicates}\n"
            f"chaos: fifo batches={len(batches)} repeated={len(batches) - len({tuple(b) for b in batches})}"
            f" messages={len(in_fifo_order)} missing={len(ledger.acknowledged - set(in_fifo_order))}\n"
            f"chaos: sending took {sent_in:.1f}s, everything delivered after {all_in:.1f}s\n"
            f"chaos: drain {drain_seconds:.1f}s at {drain_rate:.0f} deliveries/s; longest pause "
            f"{progress.longest_pause:.1f}s, quiet limit {quiet.limit():.0f}s"
        )
        assert missing == dict.fromkeys(PATHS, 0), "acknowledged messages were lost"
        assert ledger.acknowledged <= set(in_fifo_order), "acknowledged messages never reached the FIFO destination"
        # Every message stored (acknowledged or not: a 202 may be lost with a killed API worker), once, in order.
        assert in_fifo_order == sorted(set(in_fifo_order)), "the FIFO destination got messages out of order"
        assert len(ledger.acknowledged) >= 0.9 * MESSAGES, "the API refused too much to prove anything"
