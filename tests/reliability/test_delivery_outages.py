"""Outages seen from the delivery side: the worker, the scheduler and the API's publishing
while the database, the broker, or the Redis of the live stream and the rate limits is
down, and then back.

Every process rides it out: none dies or restarts, each says so in a few log lines (not
one per attempt, per second or per delivery), readiness says what is missing, and once
the service is back they resume on their own. Every message the API acknowledged,
before, during or after, reaches the receiver.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from hookpost.settings import Settings
from hookpost.storage.database import create_engine, create_sessionmaker
from hookpost.storage.models import Delivery, MessageStatus
from hookpost.stream.events import STREAM_HELLO, STREAM_INTERRUPTED
from tests.conftest import make_settings
from tests.support.databases import upgrade_to_head
from tests.support.eventually import eventually
from tests.support.own_services import OwnPostgres, OwnRedis, own_postgres, own_redis
from tests.support.processes import api_server, running
from tests.support.receiver import Receiver
from tests.support.traffic import AUTH, JsonLog, Writer

DATABASE_TIMEOUT = 2.0
OUTAGE_SECONDS = 8.0
LEASE_SECONDS = 30.0  # longer than the outage: a send made before it is recorded after it, not made again
# What a process may log about one outage, whatever its length: a line when it starts,
# one when it ends, and a few for work that was under way when it struck.
COMPLAINTS_PER_PROCESS = 6
STREAM_REFUSAL_BOUND = 15.0  # seconds: the stream's subscribe timeout (5 s), on a loaded machine


@dataclass
class Stack:
    settings: Settings
    postgres: OwnPostgres
    redis: OwnRedis
    base_url: str
    worker: subprocess.Popen[bytes]
    scheduler: subprocess.Popen[bytes]
    receiver: Receiver

    def log(self, name: str) -> JsonLog:
        return JsonLog(self.settings.data_dir / f"{name}.log")

    def marks(self) -> dict[str, int]:
        return {name: self.log(name).mark() for name in ("api", "worker", "scheduler")}

    def complaints(self, since: dict[str, int]) -> dict[str, list[str]]:
        return {name: [str(r.get("message")) for r in self.log(name).complaints(mark)] for name, mark in since.items()}


@contextmanager
def running_stack(tmp_path: Path, *, redis_is_the_broker: bool) -> Iterator[Stack]:
    """PostgreSQL and Redis of the test's own; the API, a worker and the scheduler as in
    production. Redis is the broker too, or only the live stream's and the rate limits'
    (the broker then the embedded one, which no outage here touches)."""
    hookpost = [sys.executable, "-m", "hookpost"]
    with ExitStack() as stack:
        postgres = stack.enter_context(own_postgres())
        redis = stack.enter_context(own_redis(tmp_path))
        settings = make_settings(
            tmp_path,
            database_url=postgres.url,
            broker_url=redis.url if redis_is_the_broker else "",
            redis_url=redis.url,
            database_timeout=DATABASE_TIMEOUT,
            delivery_timeout=5.0,
            lease_seconds=LEASE_SECONDS,
            requeue_after=60.0,  # the default: a broker outage must not wait for it
            scheduler_interval=0.5,
            stream_token_check_interval=0.5,
            log_format="json",
        )
        upgrade_to_head(settings)
        receiver = stack.enter_context(Receiver())
        base_url = stack.enter_context(api_server(settings))
        worker = stack.enter_context(running([*hookpost, "worker", "--concurrency", "2"], settings, "worker"))
        scheduler = stack.enter_context(running([*hookpost, "scheduler"], settings, "scheduler"))
        yield Stack(settings, postgres, redis, base_url, worker, scheduler, receiver)


@pytest.fixture
def redis_broker_stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, redis_is_the_broker=True) as stack:
        yield stack


@pytest.fixture
def separate_redis_stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, redis_is_the_broker=False) as stack:
        yield stack


async def pending_deliveries(settings: Settings) -> int:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            query = select(func.count()).select_from(Delivery).where(Delivery.status == MessageStatus.PENDING)
            return int(await session.scalar(query) or 0)
    finally:
        await engine.dispose()


def delivered(receiver: Receiver) -> Counter[str]:
    return Counter(request.headers["webhook-id"] for request in receiver.received())


def start_sending(client: httpx.Client, stack: Stack, endpoint: dict[str, object]) -> Writer:
    app_id = client.post("/api/v1/app", json={"name": "Outage"}).json()["id"]
    created = client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": f"{stack.receiver.url}/hook", **endpoint})
    assert created.status_code == 201, created.text
    return Writer(stack.base_url, app_id, timeout=DATABASE_TIMEOUT * 4)


def failed_attempts(client: httpx.Client, app_id: str) -> list[dict[str, object]]:
    endpoint_id = client.get(f"/api/v1/app/{app_id}/endpoint").json()["data"][0]["id"]
    attempts = f"/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}"
    found: list[dict[str, object]] = client.get(attempts, params={"status": 2, "limit": 250}).json()["data"]
    return found


def readiness(client: httpx.Client) -> tuple[int, dict[str, str]]:
    response = client.get("/readyz")
    return response.status_code, response.json()["checks"]


def assert_rode_it_out(stack: Stack, complaints: dict[str, list[str]]) -> None:
    assert stack.worker.poll() is None, "the worker died"
    assert stack.scheduler.poll() is None, "the scheduler died"
    for name, lines in complaints.items():
        assert len(lines) <= COMPLAINTS_PER_PROCESS * (3 if name == "worker" else 1), (name, lines)


def stream(stack: Stack, app_id: str, token: str | None = None) -> ClientConnection:
    url = stack.base_url.replace("http://", "ws://") + f"/api/v1/app/{app_id}/stream"
    headers = AUTH if token is None else {"authorization": f"Bearer {token}"}
    return connect(url, additional_headers=headers, open_timeout=30)


def close_code(connection: ClientConnection, timeout: float) -> int | None:
    """The code the server closes an open stream with, waiting for it."""
    with pytest.raises(ConnectionClosed) as closed:
        next_event(connection, "never sent", timeout)
    return closed.value.rcvd.code if closed.value.rcvd else None


def next_event(connection: ClientConnection, wanted: str, timeout: float) -> dict[str, object]:
    """The next event of type ``wanted``, skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        event: dict[str, object] = json.loads(connection.recv(timeout=max(0.0, deadline - time.monotonic())))
        if event["type"] == wanted:
            return event


def refusal(stack: Stack, app_id: str) -> tuple[int | None, float]:
    """A new stream client's close code, and how long it took to come."""
    started = time.monotonic()
    with pytest.raises(ConnectionClosed) as refused, stream(stack, app_id) as late:
        late.recv(timeout=STREAM_REFUSAL_BOUND * 2)
    return (refused.value.rcvd.code if refused.value.rcvd else None), time.monotonic() - started


def test_workers_ride_out_a_database_outage_and_deliver_everything(redis_broker_stack: Stack) -> None:
    stack = redis_broker_stack
    with httpx.Client(base_url=stack.base_url, headers=AUTH, timeout=30) as client:
        writer = start_sending(client, stack, {})
        portal_token = client.post(f"/api/v1/auth/app-portal-access/{writer.app_id}", json={}).json()["token"]
        with writer.running(threads=2), stream(stack, writer.app_id, portal_token) as portal:
            assert next_event(portal, STREAM_HELLO, 10)["appId"] == writer.app_id
            eventually(lambda: len(delivered(stack.receiver)) >= 20, "20 deliveries before the outage", timeout=60)
            marks = stack.marks()
            stack.postgres.crash()
            crashed_at = time.monotonic()
            eventually(lambda: readiness(client)[0] == 503, "readiness failing", timeout=30)
            assert readiness(client)[1]["database"] == "failing"
            refused_code, refused_in = refusal(stack, writer.app_id)  # the token cannot be checked
            open_code = close_code(portal, 30)  # nor an open stream's, on its next check
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - crashed_at)))  # the outage's length
            stack.postgres.start()
            restarted_at = time.monotonic()
            answers = len(writer.outcomes)
            eventually(lambda: any(o.status == 202 for o in writer.answers_since(answers)), "a 202 after", timeout=60)
            eventually(lambda: len(writer.answers_since(answers)) >= 40, "40 more answers after", timeout=30)
        eventually(lambda: readiness(client)[0] == 200, "readiness back", timeout=30)

        accepted = set(writer.accepted)
        eventually(lambda: accepted <= set(delivered(stack.receiver)), "every accepted message delivered", timeout=120)
        resumed_in = time.monotonic() - restarted_at
        # Every attempt recorded: a send whose record was lost would go out again once its lease ends.
        eventually(
            lambda: asyncio.run(pending_deliveries(stack.settings)) == 0, "all recorded", timeout=LEASE_SECONDS + 60
        )

    complaints = stack.complaints(marks)
    pool_processes = {record.get("pid") for record in stack.log("worker").records(marks["worker"])}
    duplicates = sum(n - 1 for n in delivered(stack.receiver).values())
    print(
        f"\ndatabase outage: {len(accepted)} accepted, all delivered {resumed_in:.1f} s after the restart; "
        f"{duplicates} duplicates; warning lines { {name: len(lines) for name, lines in complaints.items()} }"
    )
    assert_rode_it_out(stack, complaints)
    assert refused_code == 1013, refused_code
    assert refused_in < STREAM_REFUSAL_BOUND
    assert open_code == 1013, open_code
    assert len(pool_processes) <= 3, pool_processes  # the main process and its two pool processes, no new ones
    # Sends finished during the outage were recorded after it, within their lease: none made twice.
    assert duplicates == 0


def test_the_broker_down_still_accepts_and_delivers_everything_once_it_is_back(redis_broker_stack: Stack) -> None:
    stack = redis_broker_stack
    with httpx.Client(base_url=stack.base_url, headers=AUTH, timeout=30) as client:
        writer = start_sending(client, stack, {"throttleRate": 1000})  # Redis counts it too
        with writer.running(threads=2):
            eventually(lambda: len(delivered(stack.receiver)) >= 20, "20 deliveries before the outage", timeout=60)
            marks = stack.marks()
            answers_before = len(writer.outcomes)
            stack.redis.stop()
            stopped_at = time.monotonic()
            eventually(lambda: readiness(client)[0] == 503, "readiness failing", timeout=30)
            assert readiness(client)[1] == {"database": "ok", "broker": "failing"}
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))  # the outage's length
        # No message after the outage to carry the backlog along: the scheduler must queue it.
        accepted = set(writer.accepted)
        missing_at_restart = len(accepted - set(delivered(stack.receiver)))
        stack.redis.start()  # empty: whatever the broker held is gone
        restarted_at = time.monotonic()
        eventually(lambda: accepted <= set(delivered(stack.receiver)), "every accepted message delivered", timeout=120)
        resumed_in = time.monotonic() - restarted_at
        eventually(lambda: readiness(client)[0] == 200, "readiness back", timeout=30)
        failed = failed_attempts(client, writer.app_id)

    statuses = Counter(outcome.status for outcome in writer.answers_since(answers_before))
    complaints = stack.complaints(marks)
    lines = {name: len(lines) for name, lines in complaints.items()}
    print(
        f"\nbroker outage: {dict(statuses)} answers during it, {missing_at_restart} of them undelivered at the "
        f"restart, all delivered {resumed_in:.1f} s after it; warning lines {lines}"
    )
    assert set(statuses) == {202}, statuses  # the database holds the messages: accepted all along
    assert missing_at_restart > 0
    assert failed == [], failed  # no attempt failed for want of the rate limit's Redis
    assert_rode_it_out(stack, complaints)
    # Queued again as soon as the broker is back, not once requeue_after (60 s) has passed.
    assert resumed_in < 30, resumed_in


def test_deliveries_go_on_while_the_stream_and_rate_limit_redis_is_down(separate_redis_stack: Stack) -> None:
    stack = separate_redis_stack
    with httpx.Client(base_url=stack.base_url, headers=AUTH, timeout=30) as client:
        writer = start_sending(client, stack, {"throttleRate": 1000})  # counted in Redis, never reached
        app_id = writer.app_id
        with writer.running(threads=2), stream(stack, app_id) as watching:
            assert next_event(watching, STREAM_HELLO, 10)["appId"] == app_id
            eventually(lambda: len(delivered(stack.receiver)) >= 20, "20 deliveries before the outage", timeout=60)
            marks = stack.marks()
            stack.redis.stop()
            during = len(writer.accepted)

            next_event(watching, STREAM_INTERRUPTED, 30)  # an open stream is told, not left hanging
            refused_code, refused_in = refusal(stack, app_id)
            ready = readiness(client)
            # Deliveries go on: messages accepted with Redis down reach the receiver while it is down.
            eventually(lambda: len(writer.accepted) >= during + 40, "40 messages accepted with Redis down", timeout=30)
            accepted_during = set(writer.accepted[during : during + 40])
            eventually(
                lambda: accepted_during <= set(delivered(stack.receiver)), "delivered with Redis down", timeout=60
            )
            stack.redis.start()
            with stream(stack, app_id) as again:
                assert next_event(again, STREAM_HELLO, 30)["appId"] == app_id
            eventually(
                lambda: readiness(client) == (200, {"database": "ok", "broker": "ok", "redis": "ok"}), "ok", timeout=30
            )
            answers = len(writer.outcomes)
            eventually(lambda: len(writer.answers_since(answers)) >= 20, "20 more answers after", timeout=30)

        accepted = set(writer.accepted)
        eventually(lambda: accepted <= set(delivered(stack.receiver)), "every accepted message delivered", timeout=120)
        statuses = Counter(outcome.status for outcome in writer.outcomes)
        failed = failed_attempts(client, app_id)

    complaints = stack.complaints(marks)
    print(
        f"\nredis outage: {dict(statuses)}; a new stream refused in {refused_in:.1f} s (code {refused_code}); "
        f"readiness {ready}; "
        f"warning lines { {name: len(lines) for name, lines in complaints.items()} }"
    )
    assert set(statuses) == {202}, statuses
    assert failed == [], failed  # no attempt failed for want of the rate limit's Redis
    assert refused_code == 1013
    assert refused_in < STREAM_REFUSAL_BOUND
    # Ready: the API takes messages and deliveries go on; the check says what is degraded.
    assert ready == (200, {"database": "ok", "broker": "ok", "redis": "failing"})
    assert_rode_it_out(stack, complaints)
