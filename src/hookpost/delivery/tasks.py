"""Celery tasks. Each worker process runs one delivery engine (``delivery.engine``) on an
event loop of its own thread, with one database pool and one pooled httpx client for its
whole life; a delivery task hands its ids to the engine and returns as soon as the engine
has room for more, so one process keeps many deliveries in flight."""

from __future__ import annotations

import asyncio
import logging
import os

from celery.signals import worker_process_init, worker_process_shutdown
from sqlalchemy import text

from hookpost.delivery.celery_app import ENQUEUE_DUE, PURGE_EXPIRED, RUN_BACKGROUND_TASKS, SEND_DELIVERIES, celery_app
from hookpost.delivery.engine import DeliveryEngine, EngineThread
from hookpost.delivery.maintenance import advance_background_tasks, purge_expired_content, queue_due
from hookpost.delivery.ratelimit import create_rate_limiter
from hookpost.delivery.sender import create_http_client
from hookpost.delivery.service import DeliveryContext
from hookpost.observability import worker as observability
from hookpost.settings import get_settings
from hookpost.storage.database import create_engine, create_sessionmaker
from hookpost.stream.bus import create_event_bus

logger = logging.getLogger(__name__)

WARM_UP_TIMEOUT = 1.0  # seconds a new pool process may spend connecting (it has 10 to report in)
ROOM_TIMEOUT = 200.0  # seconds a task waits for the engine's room, under the task time limit

# Logging, heartbeat file, per-delivery request ids, metrics (README: Operations).
observability.install(celery_app)


class _WorkerRuntime:
    """This process's engine and what it shares with the periodic tasks."""

    def __init__(self) -> None:
        settings = get_settings()
        # No ping before each checkout (7 % of a worker's CPU): a claim that fails is retried
        # and a record that fails is retried delivery by delivery, on fresh connections once the
        # failure has told the pool its connections are dead.
        self.database = create_engine(settings, pre_ping=False)
        sessionmaker = create_sessionmaker(self.database)
        self.context = DeliveryContext(
            settings=settings,
            sessionmaker=sessionmaker,
            http=create_http_client(settings.delivery_timeout, settings.allowed_networks),
            limiter=create_rate_limiter(settings, sessionmaker),
            events=create_event_bus(settings),
        )
        self.thread = EngineThread(self._make_engine, self._close_resources)

    async def _make_engine(self) -> DeliveryEngine:
        return DeliveryEngine(self.context, self.context.settings.worker_in_flight, observability.observe_sent)

    async def _close_resources(self) -> None:
        await self.context.http.aclose()
        await self.context.limiter.aclose()
        await self.context.events.aclose()
        await self.database.dispose()

    def close(self) -> None:
        # Sends in flight finish (each is bounded by the delivery timeout) and are recorded.
        self.thread.close(timeout=self.context.settings.delivery_timeout + 10)


# Keyed by pid: a forked pool child must never use its parent's loop or sockets.
_runtimes: dict[int, _WorkerRuntime] = {}


def _get_runtime() -> _WorkerRuntime:
    """This process's runtime, made on first use (after the prefork pool has forked)."""
    runtime = _runtimes.get(os.getpid())
    if runtime is None:
        runtime = _runtimes[os.getpid()] = _WorkerRuntime()
    return runtime


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _open_runtime(**_: object) -> None:
    """Make the runtime and a database connection before the first task, which would
    otherwise wait for both. Bounded: Celery kills a pool process slow to start."""
    runtime = _get_runtime()

    async def _connect() -> None:
        async with asyncio.timeout(WARM_UP_TIMEOUT), runtime.database.connect() as connection:
            await connection.execute(text("SELECT 1"))

    try:
        runtime.thread.run(_connect())
    except Exception as error:  # the first claim connects instead
        logger.warning("no database connection at start: %s", type(error).__name__)


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
    runtime.thread.nudge(delivery_ids, observability.task_request_ids(send_deliveries.request))
    # Waiting here is the back-pressure: a busy process takes no new task from the broker,
    # so the broker hands it to a process with room.
    runtime.thread.wait_for_room(ROOM_TIMEOUT)


@celery_app.task(name=ENQUEUE_DUE)  # type: ignore[untyped-decorator]
def enqueue_due() -> int:
    """What a scheduler tick does for due deliveries, as a task for ``celery worker -B``
    (development and tests); ``hookpost scheduler`` does it without Celery beat."""
    runtime = _get_runtime()

    async def _publish(delivery_ids: list[str]) -> None:
        send_deliveries.apply_async(args=[delivery_ids])

    return runtime.thread.run(queue_due(runtime.context.sessionmaker, runtime.context.settings, _publish))


@celery_app.task(name=RUN_BACKGROUND_TASKS)  # type: ignore[untyped-decorator]
def run_background_tasks() -> None:
    """Advance API-started background work (recover) by one bounded step. Runs periodically."""
    runtime = _get_runtime()
    runtime.thread.run(advance_background_tasks(runtime.context.sessionmaker))


@celery_app.task(name=PURGE_EXPIRED)  # type: ignore[untyped-decorator]
def purge_expired() -> int:
    """Drop message payloads and response bodies past the retention period. Runs hourly."""
    runtime = _get_runtime()
    return runtime.thread.run(purge_expired_content(runtime.context.sessionmaker, runtime.context.settings))
