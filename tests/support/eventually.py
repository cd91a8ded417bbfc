"""Waiting for something another process or thread makes true: poll it until a deadline, then
fail saying what never happened. The one way tests wait; never a bare sleep for readiness."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

What = str | Callable[[], str]


def _failure(what: What, timeout: float) -> AssertionError:
    said = what() if callable(what) else what
    return AssertionError(f"not within {timeout:g}s: {said}")


def eventually(check: Callable[[], T | None], what: What, *, timeout: float = 10.0, interval: float = 0.05) -> T:
    """Return ``check()``'s first truthy answer (True, or the thing awaited); ``what`` says what
    was awaited (or, called at the deadline, what was seen instead)."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise _failure(what, timeout)
        time.sleep(interval)  # polling interval, bounded by the deadline
    return value


async def eventually_async(
    check: Callable[[], Awaitable[T | None]],
    what: What,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 - a deadline, then a failure that says what never happened
    interval: float = 0.05,
) -> T:
    """``eventually`` for a check that is a coroutine, without blocking the test's event loop."""
    deadline = time.monotonic() + timeout
    while not (value := await check()):
        if time.monotonic() > deadline:
            raise _failure(what, timeout)
        await asyncio.sleep(interval)  # polling interval, bounded by the deadline
    return value
