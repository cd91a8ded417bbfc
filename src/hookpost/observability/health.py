"""Readiness checks: is the database answering, is the broker reachable.

Each check is bounded by a timeout and reports a short reason, never a stack trace. The
broker check is blocking socket I/O (kombu), so it runs in a thread; an unanswered one is
abandoned at the timeout, and kombu's own connect timeout ends the thread soon after.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from kombu.connection import Connection
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hookpost.settings import Settings

DETAIL_LIMIT = 200


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str = "ok"


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
    with Connection(settings.broker_url, connect_timeout=timeout) as connection:  # type: ignore[no-untyped-call]
        # One try, no retry loop: a readiness probe asks again soon enough.
        connection.ensure_connection(max_retries=0)
        connection.default_channel  # noqa: B018 - opening a channel is what proves the broker answers


async def check_broker(settings: Settings, seconds: float) -> CheckResult:
    try:
        async with asyncio.timeout(seconds):
            await asyncio.to_thread(_check_broker_blocking, settings, seconds)
    except Exception as error:
        return CheckResult("broker", False, _describe(error, _passwords(settings.broker_url)))
    return CheckResult("broker", True)


async def readiness(engine: AsyncEngine, settings: Settings) -> list[CheckResult]:
    timeout = settings.readiness_timeout
    database, broker = await asyncio.gather(check_database(engine, settings, timeout), check_broker(settings, timeout))
    return [database, broker]
