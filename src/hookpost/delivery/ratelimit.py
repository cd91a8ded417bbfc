"""Rate limits in one-second windows: per endpoint (``throttleRate``, sends per second) shared by
every worker, and per application for the API's scoped tokens (``HOOKPOST_APP_API_RATE_LIMIT``).

Redis counts when Hookpost has one (``HOOKPOST_REDIS_URL``); otherwise, for endpoints, the
database does, so the embedded default enforces the same limit across its worker processes,
and for the API each process counts for itself (a database write per API request would cost
more than the limit saves). While Redis cannot be reached the fallback counts instead: a
delivery never fails for want of its counter (README: Reliability).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookpost.kit.outage import Outage
from hookpost.settings import Settings
from hookpost.storage.models import RateWindow

if TYPE_CHECKING:
    import redis.asyncio

logger = logging.getLogger(__name__)

REDIS_TIMEOUT = 1.0  # seconds a count may wait for Redis before the fallback counts it


class RateLimiter(Protocol):
    async def try_acquire(self, key: str, per_second: int) -> bool:
        """Count one in this second's window of ``key`` (an endpoint's id, or ``api:`` and an
        application's id); False when the window is already full."""

    async def aclose(self) -> None: ...


class RedisRateLimiter:
    """Counts in Redis; while Redis fails, in ``fallback`` (without one, every send is
    allowed), going back to Redis after a pause that grows while it keeps failing. Counts
    in the two places do not add up, so for the moments of a switch the limit may let
    through up to twice its rate."""

    def __init__(self, url: str, fallback: RateLimiter | None = None, fallback_name: str = "the database") -> None:
        # Imported only when Redis is configured: redis-py is 14 MB of every process that loads it.
        import redis.asyncio  # noqa: PLC0415
        from redis.asyncio.retry import Retry  # noqa: PLC0415
        from redis.backoff import NoBackoff  # noqa: PLC0415

        # No retries inside redis-py: a failed count goes to the fallback at once.
        self._redis: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT, retry=Retry(NoBackoff(), 0)
        )
        self._failures = (redis.RedisError, OSError, TimeoutError)
        self._fallback = fallback
        what = (
            f"counting rate limits in Redis ({fallback_name} counts meanwhile)" if fallback else "counting rate limits"
        )
        self._outage = Outage(logger, what)
        self._redis_again_at = 0.0  # monotonic time before which Redis is not asked

    async def try_acquire(self, key: str, per_second: int) -> bool:
        if time.monotonic() >= self._redis_again_at:
            try:
                async with asyncio.timeout(REDIS_TIMEOUT):
                    count = await self._count(key)
            except self._failures as error:
                self._redis_again_at = time.monotonic() + self._outage.failed(error)
            else:
                self._outage.recovered()
                return count <= per_second
        return True if self._fallback is None else await self._fallback.try_acquire(key, per_second)

    async def _count(self, key: str) -> int:
        window = f"hookpost:rate:{key}:{int(time.time())}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(window)
            pipe.expire(window, 5)
            count, _ = await pipe.execute()
        return int(count)

    async def aclose(self) -> None:
        await self._redis.aclose()


class DatabaseRateLimiter:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], is_sqlite: bool) -> None:
        self._sessionmaker = sessionmaker
        self._insert = sqlite_insert if is_sqlite else postgresql_insert

    async def try_acquire(self, key: str, per_second: int) -> bool:
        window = int(time.time())
        upsert = (
            self._insert(RateWindow)
            .values(endpoint_id=key, window=window, count=1)
            .on_conflict_do_update(
                index_elements=[RateWindow.endpoint_id, RateWindow.window], set_={"count": RateWindow.count + 1}
            )
            .returning(RateWindow.count)
        )
        async with self._sessionmaker() as session:
            count: int = (await session.execute(upsert)).scalar_one()
            await session.commit()
        return count <= per_second

    async def aclose(self) -> None:
        pass


class ProcessRateLimiter:
    """Counts in this process alone: each process allows the whole rate."""

    def __init__(self) -> None:
        self._window = 0
        self._counts: dict[str, int] = {}

    async def try_acquire(self, key: str, per_second: int) -> bool:
        window = int(time.time())
        if window != self._window:  # only this second's counts are ever kept
            self._window, self._counts = window, {}
        count = self._counts[key] = self._counts.get(key, 0) + 1
        return count <= per_second

    async def aclose(self) -> None:
        pass


async def forget_old_windows(session: AsyncSession) -> None:
    await session.execute(delete(RateWindow).where(RateWindow.window < int(time.time()) - 60))


def create_rate_limiter(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> RateLimiter:
    in_database = DatabaseRateLimiter(sessionmaker, settings.is_sqlite)
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url, fallback=in_database)
    return in_database


def create_api_rate_limiter(settings: Settings) -> RateLimiter:
    """The API's per-application limiter: shared by every API process through Redis when there is
    one, else (and while Redis fails) per process."""
    in_process = ProcessRateLimiter()
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url, fallback=in_process, fallback_name="each API process")
    return in_process
