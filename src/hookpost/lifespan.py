"""The API process's lifespan: what it holds for its whole life (``hookpost.state``), made
at start and closed at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from hookpost.delivery.celery_app import prepare_broker
from hookpost.delivery.dispatcher import Dispatcher
from hookpost.delivery.ratelimit import create_api_rate_limiter
from hookpost.delivery.unqueue import unmark_queued
from hookpost.observability import tracing
from hookpost.settings import Settings
from hookpost.state import AppState, LifespanState
from hookpost.storage.database import create_engine, create_sessionmaker
from hookpost.stream.bus import create_event_bus

if TYPE_CHECKING:
    from celery import Celery


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

        prepare_broker(settings)  # the Celery app itself is made by the first publish

        def make_celery() -> Celery:
            # Imported here: Celery is loaded by the first publish, not at start (dispatcher.py).
            from hookpost.delivery.celery_app import create_celery  # noqa: PLC0415

            return create_celery(settings)

        async def unpublished(delivery_ids: list[str]) -> None:
            async with sessionmaker() as session:
                await unmark_queued(session, delivery_ids)

        dispatcher = Dispatcher(make_celery, settings.delivery_batch_size, settings.dispatch_interval, unpublished)
        events = create_event_bus(settings)
        api_limiter = create_api_rate_limiter(settings)
        dispatcher.start()
        try:
            yield {
                "hookpost": AppState(
                    settings=settings,
                    admin_token=admin_token,
                    engine=engine,
                    sessionmaker=sessionmaker,
                    batch_sessionmaker=create_sessionmaker(batch_engine),
                    dispatcher=dispatcher,
                    events=events,
                    api_limiter=api_limiter,
                )
            }
        finally:
            await dispatcher.stop()
            await events.aclose()
            await api_limiter.aclose()
            await engine.dispose()
            await batch_engine.dispose()
            tracing.flush()

    return lifespan
