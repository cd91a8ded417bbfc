"""Per-endpoint rate limits (``throttleRate``, sends per second) shared by every worker.

Redis counts when Hookpost has one (``HOOKPOST_REDIS_URL``); otherwise the database does,
so the embedded default enforces the same limit across its worker processes.
"""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookpost.settings import Settings
from hookpost.storage.models import RateWindow


class RateLimiter(Protocol):
    async def try_acquire(self, endpoint_id: str, per_second: int) -> bool:
        """Count one send in this second's window; False when the window is already full."""

    async def aclose(self) -> None: ...


class RedisRateLimiter:
    def __init__(self, url: str) -> None:
        self._redis = redis.asyncio.Redis.from_url(url)

    async def try_acquire(self, endpoint_id: str, per_second: int) -> bool:
        key = f"hookpost:rate:{endpoint_id}:{int(time.time())}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 5)
            count, _ = await pipe.execute()
        return int(count) <= per_second

    async def aclose(self) -> None:
        await self._redis.aclose()


class DatabaseRateLimiter:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], is_sqlite: bool) -> None:
        self._sessionmaker = sessionmaker
        self._insert = sqlite_insert if is_sqlite else postgresql_insert

    async def try_acquire(self, endpoint_id: str, per_second: int) -> bool:
        window = int(time.time())
        upsert = (
            self._insert(RateWindow)
            .values(endpoint_id=endpoint_id, window=window, count=1)
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


async def forget_old_windows(session: AsyncSession) -> None:
    await session.execute(delete(RateWindow).where(RateWindow.window < int(time.time()) - 60))


def create_rate_limiter(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> RateLimiter:
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url)
    return DatabaseRateLimiter(sessionmaker, settings.is_sqlite)
