"""Readiness checks: is the database answering, is the broker reachable, and (when it is
a server of its own) is the Redis of the live stream and the rate limits.

The database and the broker are required: without either the API cannot take messages.
Redis is not: without it the live stream refuses clients and rate limits are counted in
the database, while messages are taken and delivered, so it only marks readiness
degraded (docs/reliability.md).

Each check is bounded by a timeout and reports a short reason, never a stack trace. The
broker check is blocking socket I/O (kombu), so it runs in a thread; an unanswered one is
abandoned at the timeout, and kombu's own connect timeout ends the thread soon after.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hookpost.settings import Settings

DETAIL_LIMIT = 200


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str = "ok"
    required: bool = True


def _describe(error: BaseException, secrets: list[str]) -> str:
    if isinstance(error, TimeoutError):
        return "no answer within the timeout"
    detail = f"{type(error).__name__}: {error}".strip().rstrip(":")
    for secret in secrets:
        detail = detail.replace(secret, "***")
    return detail[:DETAIL_LIMIT]


def _passwords(*urls: str) -> list[str]:
    found = []
    for url in urls:
        try:
            password = urlsplit(url).password
        except ValueError:
            continue
        if password:
            found.append(password)
    return found


async def check_database(engine: AsyncEngine, settings: Settings, seconds: float) -> CheckResult:
    try:
        async with asyncio.timeout(seconds), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:
        return CheckResult("database", False, _describe(error, _passwords(settings.database_url)))
    return CheckResult("database", True)


def _check_broker_blocking(settings: Settings, timeout: float) -> None:
    if settings.broker_url.startswith("filesystem"):
        # The embedded broker is a folder: it is reachable when the folder is writable.
        queue = settings.broker_dir / "queue"
        if not queue.is_dir():
            raise FileNotFoundError(f"broker folder {queue} is missing")
        if not os.access(queue, os.W_OK | os.X_OK):
            raise PermissionError(f"broker folder {queue} is not writable")
        return
    from kombu.connection import Connection  # noqa: PLC0415 - only for a broker that is a server

    with Connection(settings.broker_url, connect_timeout=timeout) as connection:  # type: ignore[no-untyped-call]
        # One try, no retry loop: a readiness probe asks again soon enough.
        connection.ensure_connection(max_retries=0)
        connection.default_channel  # noqa: B018 - opening a channel is what proves the broker answers


async def check_broker(settings: Settings, seconds: float) -> CheckResult:
    if not settings.broker_url.startswith("filesystem"):
        # kombu is loaded by the first check, off the event loop and outside its timeout: a
        # slow import on a busy machine is not the broker failing to answer.
        await asyncio.to_thread(importlib.import_module, "kombu.connection")
    try:
        async with asyncio.timeout(seconds):
            await asyncio.to_thread(_check_broker_blocking, settings, seconds)
    except Exception as error:
        return CheckResult("broker", False, _describe(error, _passwords(settings.broker_url)))
    return CheckResult("broker", True)


async def check_redis(url: str, seconds: float) -> CheckResult:
    # Loaded by the first check (only where the live stream's Redis is a server of its own),
    # off the event loop and outside the timeout, as kombu above.
    redis = await asyncio.to_thread(importlib.import_module, "redis.asyncio")
    client = redis.Redis.from_url(url, socket_connect_timeout=seconds, socket_timeout=seconds)
    try:
        async with asyncio.timeout(seconds):
            await client.ping()
    except Exception as error:
        return CheckResult("redis", False, _describe(error, _passwords(url)), required=False)
    finally:
        await client.aclose()
    return CheckResult("redis", True, required=False)


async def readiness(engine: AsyncEngine, settings: Settings) -> list[CheckResult]:
    timeout = settings.readiness_timeout
    checks = [check_database(engine, settings, timeout), check_broker(settings, timeout)]
    if settings.redis_url and settings.redis_url != settings.broker_url:
        checks.append(check_redis(settings.redis_url, timeout))  # as the broker, the broker check covers it
    return list(await asyncio.gather(*checks))
