"""A worker process's delivery runtime: its engine on an event loop of its own thread, with
one database pool and one pooled httpx client for the process's whole life.

Imported only where tasks run (a pool process, or the thread pool's main process), never by
a prefork parent, which only consumes tasks: the imports here are most of a worker's memory.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy import text

from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.engine import DeliveryEngine, EngineThread
from hookpost.delivery.ratelimit import create_rate_limiter
from hookpost.delivery.sender import create_http_client
from hookpost.kit.proxy_url import NoProxy, parse_proxy_url
from hookpost.observability import tracing
from hookpost.observability import worker as observability
from hookpost.operational import events as operational_events
from hookpost.settings import get_settings
from hookpost.storage.database import create_engine, create_sessionmaker
from hookpost.stream.bus import create_event_bus

if TYPE_CHECKING:
    from hookpost.delivery.fifo import FifoRunner

logger = logging.getLogger(__name__)


class WorkerRuntime:
    """This process's engine and what it shares with the periodic tasks."""

    def __init__(self) -> None:
        settings = get_settings()
        operational_events.install()  # the engine disables endpoints; that is reported
        tracing.setup(settings, "worker")  # in the process that delivers: after a prefork pool's fork
        # No ping before each checkout (7 % of a worker's CPU): a claim that fails is retried
        # and a record that fails is retried delivery by delivery, on fresh connections once the
        # failure has told the pool its connections are dead.
        self.database = create_engine(settings, pre_ping=False)
        sessionmaker = create_sessionmaker(self.database)
        self.context = DeliveryContext(
            settings=settings,
            sessionmaker=sessionmaker,
            http=create_http_client(
                settings.delivery_timeout,
                settings.allowed_networks,
                proxy=parse_proxy_url(settings.proxy_url.get_secret_value()) if settings.proxy_url else None,
                no_proxy=NoProxy.parse(settings.no_proxy),
            ),
            limiter=create_rate_limiter(settings, sessionmaker),
            events=create_event_bus(settings),
        )
        self._fifo: FifoRunner | None = None
        self.thread = EngineThread(self._make_engine, self._close_resources)

    def tick_fifo(self) -> int:
        """Lease the due FIFO destinations this process has room for and start their batches
        on the engine's loop, with its pools (delivery/fifo.py); how many were leased.

        The runner is made by the first tick (a scheduler tick sends one while a FIFO
        destination is enabled): its module and what that imports (the destinations' services
        and schemas, the sinks) were a quarter of this runtime's imports, paid by every
        worker process before its first delivery. Imported in the calling thread, so the
        engine's loop never waits on the import."""
        from hookpost.delivery.fifo import FifoRunner  # noqa: PLC0415

        async def tick() -> int:
            if self._fifo is None:
                self._fifo = FifoRunner(self.context)
            return await self._fifo.tick()

        return self.thread.run(tick())

    async def _make_engine(self) -> DeliveryEngine:
        limit = self.context.settings.worker_in_flight
        return DeliveryEngine(self.context, limit, observability.observe_sent, observability.in_flight_gauge(limit))

    async def _close_resources(self) -> None:
        if self._fifo is not None:
            await self._fifo.stop()  # batches in flight finish and are recorded
        await self.context.http.aclose()
        await self.context.limiter.aclose()
        await self.context.events.aclose()
        await self.database.dispose()

    def warm_up(self, timeout: float) -> None:
        """Open a database connection now rather than in the first task; bounded by ``timeout``."""

        async def _connect() -> None:
            async with asyncio.timeout(timeout), self.database.connect() as connection:
                await connection.execute(text("SELECT 1"))

        try:
            self.thread.run(_connect())
        except Exception as error:  # the first claim connects instead
            logger.warning("no database connection at start: %s", type(error).__name__)

    def close(self) -> None:
        # Sends in flight finish (each is bounded by the delivery timeout) and are recorded.
        self.thread.close(timeout=self.context.settings.delivery_timeout + 10)
        tracing.flush()  # a pool process exits without running atexit
