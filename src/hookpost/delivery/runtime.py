"""A worker process's delivery runtime: its engine on an event loop of its own thread, with
one database pool and one pooled httpx client for the process's whole life.

Imported only where tasks run (a pool process, or the thread pool's main process), never by
a prefork parent, which only consumes tasks: the imports here are most of a worker's memory.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text

from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.engine import DeliveryEngine, EngineThread
from hookpost.delivery.fifo import FifoRunner
from hookpost.delivery.ratelimit import create_rate_limiter
from hookpost.delivery.sender import create_http_client
from hookpost.kit.proxy_url import NoProxy, parse_proxy_url
from hookpost.observability import tracing
from hookpost.observability import worker as observability
from hookpost.operational import events as operational_events
from hookpost.settings import get_settings
from hookpost.storage.database import create_engine, create_sessionmaker
from hookpost.stream.bus import create_event_bus

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
        # FIFO destinations' batches, on the engine's loop with its pools (delivery/fifo.py).
        self.fifo = FifoRunner(self.context)
        self.thread = EngineThread(self._make_engine, self._close_resources)

    async def _make_engine(self) -> DeliveryEngine:
        limit = self.context.settings.worker_in_flight
        return DeliveryEngine(self.context, limit, observability.observe_sent, observability.in_flight_gauge(limit))

    async def _close_resources(self) -> None:
        await self.fifo.stop()  # batches in flight finish and are recorded
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
