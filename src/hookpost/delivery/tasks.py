"""Celery tasks. Each worker process runs one delivery engine (``delivery.engine``) on an
event loop of its own thread, with one database pool and one pooled httpx client for its
whole life; a delivery task hands its ids to the engine and returns as soon as the engine
has room for more, so one process keeps many deliveries in flight."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from celery.signals import worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown

from hookpost.delivery.celery_app import (
    DELIVER_FIFO,
    ENQUEUE_DUE,
    PURGE_EXPIRED,
    RUN_BACKGROUND_TASKS,
    SEND_DELIVERIES,
    celery_app,
)
from hookpost.observability import worker as observability

if TYPE_CHECKING:
    from hookpost.delivery.runtime import WorkerRuntime


WARM_UP_TIMEOUT = 1.0  # seconds a new pool process may spend connecting (it has 10 to report in)
ROOM_TIMEOUT = 200.0  # seconds a task waits for the engine's room, under the task time limit

# Logging, heartbeat file, per-delivery request ids, metrics (README: Operations).
observability.install(celery_app)

# Keyed by pid: a forked pool child must never use its parent's loop or sockets.
_runtimes: dict[int, WorkerRuntime] = {}
# The thread pool's threads ask for the runtime at once: only one of them makes it.
_runtimes_lock = threading.Lock()


def _get_runtime() -> WorkerRuntime:
    """This process's runtime, made on first use (after the prefork pool has forked)."""
    with _runtimes_lock:
        runtime = _runtimes.get(os.getpid())
        if runtime is None:
            # Imported here, not at the top: a prefork parent runs no task and never needs it.
            from hookpost.delivery.runtime import WorkerRuntime  # noqa: PLC0415

            runtime = _runtimes[os.getpid()] = WorkerRuntime()
        return runtime


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _open_runtime(**_: object) -> None:
    """Make the runtime and a database connection before the first task, which would
    otherwise wait for both. Bounded: Celery kills a pool process slow to start."""
    _get_runtime().warm_up(WARM_UP_TIMEOUT)


@worker_ready.connect  # type: ignore[untyped-decorator]
def _open_runtime_in_main_process(sender: object, **_: object) -> None:
    """The thread pool runs tasks in the main process (``hookpost worker --concurrency 1``):
    its runtime is opened here; a prefork parent runs no task, so opens none."""
    from celery.concurrency.prefork import TaskPool as PreforkPool  # noqa: PLC0415 - loaded by then

    if not isinstance(getattr(sender, "pool", None), PreforkPool):
        _open_runtime()


# worker_shutdown: in the main process, after its pool has stopped (the thread pool's runtime).
@worker_shutdown.connect  # type: ignore[untyped-decorator]
@worker_process_shutdown.connect  # type: ignore[untyped-decorator]
def _close_runtime(**_: object) -> None:
    runtime = _runtimes.pop(os.getpid(), None)
    if runtime is not None:
        runtime.close()


@celery_app.task(name=SEND_DELIVERIES)  # type: ignore[untyped-decorator]
def send_deliveries(delivery_ids: list[str]) -> None:
    """Hand the deliveries to this process's engine; return once it has room for more.

    Returning early is safe: the task is a nudge. A delivery the engine has not claimed
    yet stays due in the database, and one it has claimed is leased; if this process
    dies, the scheduler queues both again (README: Reliability).
    """
    runtime = _get_runtime()
    task = send_deliveries.request
    runtime.thread.nudge(delivery_ids, observability.task_request_ids(task), observability.task_traceparents(task))
    # Waiting here is the back-pressure: a busy process takes no new task from the broker,
    # so the broker hands it to a process with room.
    runtime.thread.wait_for_room(ROOM_TIMEOUT)


@celery_app.task(name=ENQUEUE_DUE)  # type: ignore[untyped-decorator]
def enqueue_due() -> int:
    """What a scheduler tick does for due deliveries, as a task for ``celery worker -B``
    (development and tests); ``hookpost scheduler`` does it without Celery beat."""
    from hookpost.delivery.maintenance import queue_due  # noqa: PLC0415 - see _get_runtime

    runtime = _get_runtime()

    async def _publish(delivery_ids: list[str]) -> None:
        send_deliveries.apply_async(args=[delivery_ids])

    return runtime.thread.run(queue_due(runtime.context.sessionmaker, runtime.context.settings, _publish))


@celery_app.task(name=RUN_BACKGROUND_TASKS)  # type: ignore[untyped-decorator]
def run_background_tasks() -> None:
    """Advance API-started background work (recover) by one bounded step. Runs periodically."""
    from hookpost.background_tasks.runner import advance_background_tasks  # noqa: PLC0415 - see _get_runtime

    runtime = _get_runtime()
    runtime.thread.run(advance_background_tasks(runtime.context.sessionmaker))


@celery_app.task(name=PURGE_EXPIRED)  # type: ignore[untyped-decorator]
def purge_expired() -> int:
    """Blank payloads and response bodies past their retention, remove messages past the
    retention (retention.py) and make the coming days' partitions. Runs hourly."""
    from hookpost.delivery.maintenance import purge_expired_content  # noqa: PLC0415 - see _get_runtime
    from hookpost.delivery.retention import remove_expired_history  # noqa: PLC0415 - see _get_runtime

    runtime = _get_runtime()
    sessionmaker, settings = runtime.context.sessionmaker, runtime.context.settings
    purged = runtime.thread.run(purge_expired_content(sessionmaker, settings))
    runtime.thread.run(remove_expired_history(sessionmaker, settings))
    return purged


@celery_app.task(name=DELIVER_FIFO)  # type: ignore[untyped-decorator]
def deliver_fifo() -> int:
    """Lease the due FIFO destinations this process has room for and start their batches on
    the engine's loop; returns at once (the batches go on there). Sent by every scheduler tick
    while a FIFO destination is enabled."""
    runtime = _get_runtime()
    return runtime.tick_fifo()
