"""``/healthz`` and ``/readyz`` on the whole app in memory, against real databases and brokers
or loopback ports where nothing listens."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from hookpost.app import create_app
from hookpost.observability import health
from hookpost.settings import Settings
from hookpost.storage.database import create_engine
from tests.conftest import make_settings
from tests.observability.commands import closed_port
from tests.support.databases import fresh_postgres_database, upgrade_to_head
from tests.support.services import RABBITMQ_URL, REDIS_URL, require

TIMEOUT = 1.0
DB_PASSWORD = "pw-that-must-not-leak"


def ready(settings: Settings) -> tuple[int, dict[str, object], float]:
    """GET /readyz (no token), its JSON, and how long it took."""
    with TestClient(create_app(settings)) as client:
        # An app's first request builds its routes (FastAPI does it on first use): not what is timed.
        assert client.get("/healthz").status_code == 200
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started
    return response.status_code, response.json(), elapsed


def real_broker(name: str) -> str:
    if name == "redis":
        url = require("Redis", REDIS_URL)
        redis.Redis.from_url(url).ping()
        return url
    return require("RabbitMQ", RABBITMQ_URL)


@pytest.fixture
def embedded(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path, readiness_timeout=TIMEOUT)
    upgrade_to_head(settings)
    return settings


def test_healthz_is_ok_without_a_token(embedded: Settings) -> None:
    with TestClient(create_app(embedded)) as client:
        response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_on_the_embedded_database_and_broker(embedded: Settings) -> None:
    status, body, _ = ready(embedded)

    assert status == 200, body
    assert body == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_ready_on_postgres_and_a_real_broker(tmp_path: Path, broker: str) -> None:
    broker_url = real_broker(broker)
    with fresh_postgres_database() as database_url:
        settings = make_settings(tmp_path, database_url=database_url, broker_url=broker_url, readiness_timeout=TIMEOUT)
        status, body, _ = ready(settings)

    assert status == 200, body
    assert body["checks"] == {"database": "ok", "broker": "ok"}


def test_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    with closed_port() as port:
        settings = make_settings(
            tmp_path,
            database_url=f"postgresql+asyncpg://hookpost:{DB_PASSWORD}@127.0.0.1:{port}/hookpost",
            readiness_timeout=TIMEOUT,
        )
        status, body, elapsed = ready(settings)

    assert status == 503, body
    assert body["status"] == "unavailable"
    assert body["failing"] == ["database"]
    assert body["checks"] == {"database": "failing", "broker": "ok"}
    detail = body["detail"]
    assert isinstance(detail, dict)
    assert set(detail) == {"database"}
    assert DB_PASSWORD not in str(body)
    assert "Traceback" not in str(body)
    assert elapsed < TIMEOUT + 2


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_unreachable_broker_is_named(embedded: Settings, scheme: str) -> None:
    with closed_port() as port:
        url = f"redis://127.0.0.1:{port}/0" if scheme == "redis" else f"amqp://guest:guest@127.0.0.1:{port}//"
        settings = embedded.model_copy(update={"broker_url": url})
        status, body, elapsed = ready(settings)

    assert status == 503, body
    assert body["failing"] == ["broker"]
    assert body["checks"] == {"database": "ok", "broker": "failing"}
    detail = body["detail"]
    assert isinstance(detail, dict)
    assert set(detail) == {"broker"}
    assert "Traceback" not in str(body)
    assert elapsed < TIMEOUT + 2


@pytest.fixture
def silent_broker() -> Iterator[int]:
    """A loopback server that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in accepted:
            connection.close()
        server.close()


async def test_a_hanging_broker_times_out_without_blocking_the_event_loop(
    embedded: Settings, silent_broker: int
) -> None:
    settings = embedded.model_copy(update={"broker_url": f"amqp://guest:guest@127.0.0.1:{silent_broker}//"})
    engine = create_engine(settings)
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:  # measures how long the loop goes without running us
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        started = time.monotonic()
        results = await health.readiness(engine, settings)
        elapsed = time.monotonic() - started
    finally:
        done.set()
        await ticker
        await engine.dispose()

    database, broker = results
    assert database.ok
    assert not broker.ok
    assert broker.detail == "no answer within the timeout"
    assert TIMEOUT - 0.1 <= elapsed < TIMEOUT + 1.5
    assert len(gaps) > 10
    assert max(gaps) < 0.5, f"the event loop stalled for {max(gaps):.2f}s"
