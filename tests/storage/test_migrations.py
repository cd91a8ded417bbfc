"""Migrations build the schema from nothing, and the models match them exactly."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from hookpost.storage.migrate import alembic_config, upgrade_to_head
from hookpost.storage.models import Base
from tests.conftest import make_settings
from tests.support.databases import fresh_postgres_database


async def _tables(database_url: str) -> set[str]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


def _upgrade_and_check(tmp_path: Path, database_url: str | None = None) -> None:
    settings = make_settings(tmp_path, **({"database_url": database_url} if database_url else {}))
    upgrade_to_head(settings)
    assert set(Base.metadata.tables) <= asyncio.run(_tables(settings.database_url))
    # Raises if autogenerate would write a new migration: models and migrations agree.
    command.check(alembic_config(settings))
    upgrade_to_head(settings)  # running it again is a no-op, as on every deploy


def test_sqlite_upgrades_from_empty_and_matches_models(tmp_path: Path) -> None:
    _upgrade_and_check(tmp_path)


def test_postgres_upgrades_from_empty_and_matches_models(tmp_path: Path) -> None:
    with fresh_postgres_database() as database_url:
        _upgrade_and_check(tmp_path, database_url)
