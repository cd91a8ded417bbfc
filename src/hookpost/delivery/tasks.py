"""Celery tasks. Each worker process runs one event loop, one engine and one pooled httpx
client for its whole life, so a task pays for neither connection set-up nor a new loop."""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import suppress
from dataclasses import dataclass

from celery.signals import worker_process_init, worker_process_shutdown
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hookpost.delivery.celery_app import ENQUEUE_DUE, PURGE_EXPIRED, RUN_BACKGROUND_TASKS, SEND_DELIVERIES, celery_app
from hookpost.delivery.maintenance import advance_background_tasks, purge_expired_content
from hookpost.delivery.ratelimit import create_rate_limiter
from hookpost.delivery.sender import create_http_client
from hookpost.delivery.service import DeliveryContext, claim_due_for_queue, deliver_batch
from hookpost.observability import worker as observability
from hookpost.settings import get_settings
from hookpost.storage.database import create_engine, create_sessionmaker
from hookpost.stream.bus import create_event_bus

logger = logging.getLogger(__name__)

STREAM_FLUSH_TIMEOUT = 1.0  # seconds a task may wait, after its deliveries, for stream events to go out
WARM_UP_TIMEOUT = 1.0  # seconds a new pool process may spend connecting (it has 10 to report in)

# Logging, heartbeat file, per-delivery request ids, metrics (README: Operations).
observability.install(celery_app)


@dataclass
class _WorkerRuntime:
    loop: asyncio.AbstractEventLoop
    engine: AsyncEngine
    context: DeliveryContext

    def close(self) -> None:
        async def _close() -> None:
            await self.context.http.aclose()
            await self.context.limiter.aclose()
            await self.context.events.aclose()
            await self.engine.dispose()

        self.loop.run_until_complete(_close())
        self.loop.close()


# Keyed by pid: a forked pool child must never use its parent's loop or sockets.
_runtimes: dict[int, _WorkerRuntime] = {}


def _get_runtime() -> _WorkerRuntime:
    """This process's runtime, made on first use (after the prefork pool has forked)."""
    runtime = _runtimes.get(os.getpid())
    if runtime is None:
        settings = get_settings()
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine)
        context = DeliveryContext(
            settings=settings,
            sessionmaker=sessionmaker,
            http=create_http_client(settings.delivery_timeout, settings.allowed_networks),
            limiter=create_rate_limiter(settings, sessionmaker),
            events=create_event_bus(settings),
        )
        runtime = _runtimes[os.getpid()] = _WorkerRuntime(asyncio.new_event_loop(), engine, context)
    return runtime


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _open_runtime(**_: object) -> None:
    """Make the runtime and a database connection before the first task, which would
    otherwise wait for both. Bounded: Celery kills a pool process slow to start."""
    runtime = _get_runtime()

    async def _connect() -> None:
        async with asyncio.timeout(WARM_UP_TIMEOUT), runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    try:
        runtime.loop.run_until_complete(_connect())
    except Exception as error:  # the first task connects instead
        logger.warning("no database connection at start: %s", type(error).__name__)


@worker_process_shutdown.connect  # type: ignore[untyped-decorator]
def _close_runtime(**_: object) -> None:
    runtime = _runtimes.pop(os.getpid(), None)
    if runtime is not None:
        runtime.close()


@celery_app.task(name=SEND_DELIVERIES)  # type: ignore[untyped-decorator]
def send_deliveries(delivery_ids: list[str]) -> None:
    """Send the batch's deliveries concurrently over the worker's pooled client."""
    runtime = _get_runtime()
    request_ids = observability.task_request_ids(send_deliveries.request)

    async def _send_all() -> None:
        try:
            sent = await deliver_batch(runtime.context, delivery_ids, request_ids)
        except Exception:
            # The leases run out and the scheduler queues the deliveries again.
            logger.exception("delivering %d deliveries failed", len(delivery_ids))
            sent = []
        observability.observe_sent(sent)
        # The loop stops when this task ends: let the live stream's events out first (bounded).
        with suppress(TimeoutError):
            async with asyncio.timeout(STREAM_FLUSH_TIMEOUT):
                await runtime.context.events.flush()

    runtime.loop.run_until_complete(_send_all())


@celery_app.task(name=ENQUEUE_DUE)  # type: ignore[untyped-decorator]
def enqueue_due() -> int:
    """Queue every delivery that is due and not already queued or held. Runs periodically."""
    runtime = _get_runtime()
    settings = runtime.context.settings
    queued = 0
    while True:

        async def _claim() -> list[str]:
            async with runtime.context.sessionmaker() as session:
                return await claim_due_for_queue(session, settings, settings.delivery_batch_size)

        ids = runtime.loop.run_until_complete(_claim())
        if ids:
            send_deliveries.apply_async(args=[ids])
            queued += len(ids)
        if len(ids) < settings.delivery_batch_size or queued >= 100 * settings.delivery_batch_size:
            return queued


@celery_app.task(name=RUN_BACKGROUND_TASKS)  # type: ignore[untyped-decorator]
def run_background_tasks() -> None:
    """Advance API-started background work (recover) by one bounded step. Runs periodically."""
    runtime = _get_runtime()
    runtime.loop.run_until_complete(advance_background_tasks(runtime.context.sessionmaker))


@celery_app.task(name=PURGE_EXPIRED)  # type: ignore[untyped-decorator]
def purge_expired() -> int:
    """Drop message payloads and response bodies past the retention period. Runs hourly."""
    runtime = _get_runtime()
    return runtime.loop.run_until_complete(
        purge_expired_content(runtime.context.sessionmaker, runtime.context.settings)
    )
