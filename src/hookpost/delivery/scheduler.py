"""The scheduler (``hookpost scheduler``): queues due deliveries, nudges workers to serve FIFO
destinations, advances background work, purges expired content, removes expired history and
makes the coming days' partitions.

A small asyncio process of its own rather than Celery beat publishing a task a second for
a worker to run: each tick asks the database directly (one indexed query per kind of work)
and publishes delivery tasks only for what is due, so an idle installation sends nothing
to the broker and logs nothing.

Several replicas are safe, so the scheduler need not be a single point of failure: every
claim is guarded in the database (``claim_due_for_queue`` marks deliveries queued, on
PostgreSQL with ``FOR UPDATE SKIP LOCKED``; a background task's step is leased the same
way; SQLite has one writer at a time), so two replicas split the work rather than repeat it,
and the retention purge is idempotent.

    python -m hookpost.delivery.scheduler
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable
from contextlib import suppress

from celery import Celery
from kombu.exceptions import OperationalError as BrokerUnavailable

from hookpost.background_tasks.runner import advance_background_tasks
from hookpost.delivery.celery_app import DELIVER_FIFO, SEND_DELIVERIES, create_celery
from hookpost.delivery.due import any_fifo_destination
from hookpost.delivery.maintenance import purge_expired_content, queue_due
from hookpost.delivery.retention import remove_expired_history
from hookpost.kit.outage import Outage
from hookpost.observability.logging import configure_logging
from hookpost.settings import Settings, get_settings
from hookpost.storage.database import create_engine, create_sessionmaker, database_unavailable

logger = logging.getLogger("hookpost.delivery.scheduler")  # the same name when run as __main__

PURGE_EVERY = 3600.0  # seconds between two retention purges


class Scheduler:
    def __init__(self, settings: Settings, celery: Celery) -> None:
        self._settings = settings
        self._celery = celery
        self._database = create_engine(settings)
        self._sessionmaker = create_sessionmaker(self._database)
        self._stopping = asyncio.Event()
        self._next_purge = time.monotonic()
        # Each kind of work's trouble (the database or the broker down): a few log lines
        # however long it lasts, and ticks spaced out meanwhile (README: Reliability).
        self._outages: dict[str, Outage] = {}
        self._pause = 0.0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        logger.info("scheduler started: a tick every %g s", self._settings.scheduler_interval)
        try:
            while not self._stopping.is_set():
                await self.tick()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), max(self._settings.scheduler_interval, self._pause))
        finally:
            await self._database.dispose()
        logger.info("scheduler stopped")

    async def tick(self) -> None:
        """One round of every kind of work; a failure of one is logged and retried next tick."""
        self._pause = 0.0
        await self._guarded("queueing due deliveries", queue_due(self._sessionmaker, self._settings, self._publish))
        await self._guarded("nudging FIFO destinations", self._nudge_fifo())
        await self._guarded("advancing background tasks", advance_background_tasks(self._sessionmaker))
        if time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + PURGE_EVERY
            await self._guarded("purging expired content", purge_expired_content(self._sessionmaker, self._settings))
            await self._guarded("removing expired history", remove_expired_history(self._sessionmaker, self._settings))

    async def _nudge_fifo(self) -> None:
        """A worker serves the FIFO destinations that are due (its leases say which): one task a
        tick while any FIFO destination is enabled, none otherwise."""
        async with self._sessionmaker() as session:
            wanted = await any_fifo_destination(session)
        if wanted:
            await asyncio.to_thread(self._celery.send_task, DELIVER_FIFO)

    async def _publish(self, delivery_ids: list[str]) -> None:
        # A publish is blocking socket I/O.
        await asyncio.to_thread(self._celery.send_task, SEND_DELIVERIES, args=[delivery_ids])

    async def _guarded(self, what: str, work: Awaitable[object]) -> None:
        outage = self._outages.get(what) or self._outages.setdefault(what, Outage(logger, what))
        try:
            await work
        except Exception as error:
            expected = database_unavailable(error) or isinstance(error, BrokerUnavailable)
            self._pause = max(self._pause, outage.failed(error, expected=expected))
        else:
            outage.recovered()


async def _main() -> None:
    settings = get_settings()
    scheduler = Scheduler(settings, create_celery(settings, with_tasks=False))
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(stop_signal, scheduler.stop)
    await scheduler.run()


def main() -> None:
    configure_logging(get_settings().log_format or "plain", "INFO")
    asyncio.run(_main())


if __name__ == "__main__":
    main()
