"""Both rate limiters count sends per endpoint per second, shared by every worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis
from fastapi.testclient import TestClient

from hookpost.delivery.ratelimit import DatabaseRateLimiter, RateLimiter, RedisRateLimiter
from hookpost.settings import Settings
from hookpost.storage.database import create_engine, create_sessionmaker
from tests.support.services import REDIS_URL, require


@pytest.fixture(params=["database", "redis"])
async def limiters(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[tuple[RateLimiter, RateLimiter]]:
    """Two limiters over one store, as two worker processes would have."""
    if request.param == "redis":
        url = require("Redis", REDIS_URL)
        redis.Redis.from_url(url).flushdb()
        pair: tuple[RateLimiter, RateLimiter] = (RedisRateLimiter(url), RedisRateLimiter(url))
        yield pair
        for limiter in pair:
            await limiter.aclose()
        return
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    yield DatabaseRateLimiter(sessionmaker, is_sqlite=True), DatabaseRateLimiter(sessionmaker, is_sqlite=True)
    await engine.dispose()


async def _next_second() -> None:
    await asyncio.sleep(1 - time.time() % 1 + 0.01)  # waiting for the clock, not for readiness


@pytest.fixture
def endpoint_ids(client: TestClient) -> list[str]:
    """Real endpoints: the database limiter's counts belong to one."""
    app_id = client.post("/api/v1/app", json={"name": "limits"}).json()["id"]
    return [
        client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": "https://hooks.example.com/"}).json()["id"]
        for _ in range(4)
    ]


async def test_the_limit_holds_across_limiters_and_resets_each_second(
    limiters: tuple[RateLimiter, RateLimiter], endpoint_ids: list[str]
) -> None:
    first, second = limiters
    other = endpoint_ids.pop()
    for endpoint in endpoint_ids:  # a loaded machine may stall across a window; then try a fresh one
        await _next_second()
        window = int(time.time())
        granted = [await limiter.try_acquire(endpoint, 3) for limiter in (first, second) * 3]
        if int(time.time()) == window:
            break
    assert granted == [True, True, True, False, False, False]
    assert await first.try_acquire(other, 3), "each endpoint has its own count"

    await _next_second()
    assert await second.try_acquire(endpoint, 3), "a new second, a new count"
