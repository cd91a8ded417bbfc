"""Background tasks seen through the official Svix client: waiting for one to finish."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from svix.api import (
    BackgroundTaskOut,
    BackgroundTaskStatus,
    Svix,
)

from tests.support.eventually import eventually
from tests.test_svix_client import DEADLINE, Hookpost


def finished(svix: Svix, task_id: str, hookpost: Hookpost) -> BackgroundTaskOut:
    def done() -> BackgroundTaskOut | None:
        task = svix.background_task.get(task_id)
        return task if task.status != BackgroundTaskStatus.RUNNING else None

    task = eventually(done, and_worker_state(f"background task {task_id} finished", hookpost), timeout=DEADLINE)
    assert task.status == BackgroundTaskStatus.FINISHED, task
    return task


def and_worker_state(what: str, hookpost: Hookpost) -> Callable[[], str]:
    """What was awaited and, at the deadline, what the worker was doing."""
    return lambda: f"{what}; {hookpost.worker_state()}"


def an_hour_ago() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)
