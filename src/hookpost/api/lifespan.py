"""What an API process holds for its whole life, made and closed by the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypedDict

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hookpost.delivery.celery_app import create_celery
from hookpost.delivery.dispatcher import Dispatcher
from hookpost.delivery.ratelimit import RateLimiter, create_api_rate_limiter
from hookpost.delivery.unqueue import unmark_queued
from hookpost.settings import Settings
from hookpost.storage.database import create_engine, create_sessionmaker
from hookpost.stream.bus import EventBus, create_event_bus


@dataclass(frozen=True)
class AppState:
    settings: Settings
    admin_token: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # The group commit of new messages (messages.service): on PostgreSQL an engine of its own
    # in autocommit, each batch being one statement; elsewhere ``sessionmaker``.
    batch_sessionmaker: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    dispatcher: Dispatcher
    events: EventBus  # the live stream's bus: publish here, subscribe for WebSocket clients
    api_limiter: RateLimiter  # scoped tokens' requests per application (auth.policy.within_rate)


class LifespanState(TypedDict):
    hookpost: AppState


def make_lifespan(settings: Settings, admin_token: str):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[LifespanState]:
        # The API's statements are short; the workers' maintenance may run longer.
        engine = create_engine(settings, statement_timeout=settings.database_statement_timeout)
        sessionmaker = create_sessionmaker(engine)
        # No pre-ping for the batches (a round trip each): their first statement, a read,
        # retries once on a connection found broken (``PostgresStatements.targets``).
        batch_engine = (
            engine
            if settings.is_sqlite
            else create_engine(
                settings, statement_timeout=settings.database_statement_timeout, autocommit=True, pre_ping=False
            )
        )
        celery = create_celery(settings)

        async def unpublished(delivery_ids: list[str]) -> None:
            async with sessionmaker() as session:
                await unmark_queued(session, delivery_ids)

        dispatcher = Dispatcher(celery, settings.delivery_batch_size, settings.dispatch_interval, unpublished)
        events = create_event_bus(settings)
        api_limiter = create_api_rate_limiter(settings)
        async with httpx.AsyncClient(timeout=settings.delivery_timeout) as http:
            dispatcher.start()
            try:
                yield {
                    "hookpost": AppState(
                        settings=settings,
                        admin_token=admin_token,
                        engine=engine,
                        sessionmaker=sessionmaker,
                        batch_sessionmaker=create_sessionmaker(batch_engine),
                        http=http,
                        dispatcher=dispatcher,
                        events=events,
                        api_limiter=api_limiter,
                    )
                }
            finally:
                await dispatcher.stop()
                await events.aclose()
                await api_limiter.aclose()
                celery.close()
                await engine.dispose()
                await batch_engine.dispose()

    return lifespan
