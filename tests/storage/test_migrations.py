"""Migrations build the schema from nothing, and the models match them exactly."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from hookpost.auth.capabilities import Capability
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


async def _execute(database_url: str, *statements: str) -> list[tuple[object, ...]]:
    """Run the statements in one transaction; the rows of the last."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            rows: list[tuple[object, ...]] = []
            for statement in statements:
                result = await connection.execute(text(statement))
                rows = [tuple(row) for row in result] if result.returns_rows else []
            return rows
    finally:
        await engine.dispose()


def _tokens_keep_what_they_could_do(tmp_path: Path, database_url: str | None = None) -> None:
    """0008 on tokens minted before it: a read-only one reads only (ViewBase), any other gets every
    capability; going back down, only the read-only one is read-only again."""
    settings = make_settings(tmp_path, **({"database_url": database_url} if database_url else {}))
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    config = alembic_config(settings)
    command.upgrade(config, "0007")
    later = "'2099-01-01 00:00:00+00:00'"
    asyncio.run(
        _execute(
            settings.database_url,
            "INSERT INTO application (id, name, metadata, created_at, updated_at) "
            f"VALUES ('app_1', 'One', '{{}}', {later}, {later})",
            "INSERT INTO access_token (id, token_hash, app_id, read_only, expires_at, created_at) VALUES "
            f"('tok_reader', 'a', 'app_1', true, {later}, {later}), "
            f"('tok_full', 'b', 'app_1', false, {later}, {later})",
        )
    )
    upgrade_to_head(settings)
    rows = asyncio.run(_execute(settings.database_url, "SELECT id, capabilities FROM access_token ORDER BY id"))
    assert [(token_id, _names(names)) for token_id, names in rows] == [
        ("tok_full", sorted(capability.value for capability in Capability)),
        ("tok_reader", ["ViewBase"]),
    ]
    command.downgrade(config, "0007")
    rows = asyncio.run(_execute(settings.database_url, "SELECT id, read_only FROM access_token ORDER BY id"))
    assert [(token_id, bool(read_only)) for token_id, read_only in rows] == [("tok_full", False), ("tok_reader", True)]


def _names(stored: object) -> list[str]:
    names = json.loads(stored) if isinstance(stored, str) else stored
    assert isinstance(names, list)
    return names


def test_sqlite_tokens_keep_their_access_through_the_capabilities_migration(tmp_path: Path) -> None:
    _tokens_keep_what_they_could_do(tmp_path)


def test_postgres_tokens_keep_their_access_through_the_capabilities_migration(tmp_path: Path) -> None:
    with fresh_postgres_database() as database_url:
        _tokens_keep_what_they_could_do(tmp_path, database_url)
