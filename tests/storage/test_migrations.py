"""Migrations build the schema from nothing, and the models match them exactly."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from hookpost.auth.capabilities import Capability
from hookpost.kit.ids import first_id_at
from hookpost.kit.time import as_utc
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


_T0 = datetime(2026, 3, 1, 10, 20, tzinfo=UTC)
_ROWS = {
    "application": [{"id": "app_1", "name": "a", "metadata": "{}", "created_at": _T0, "updated_at": _T0}],
    "endpoint": [
        {
            "id": f"ep_{n}",
            "app_id": "app_1",
            "url": "https://example.test/",
            "description": "",
            "disabled": False,
            "metadata": "{}",
            "headers": "",
            "secret": "",
            "created_at": _T0,
            "updated_at": _T0,
        }
        for n in (1, 2)
    ],
    "message": [
        {
            "id": f"msg_{n}",
            "app_id": "app_1",
            "event_type": "t",
            "payload": "{}",
            "created_at": _T0 + timedelta(minutes=25 * n),
        }
        for n in range(4)
    ],
    # (message, endpoint, status): created 10:20, 10:45, 11:10, 11:35
    "delivery": [
        {
            "id": f"dlv_{m}_{e}",
            "app_id": "app_1",
            "msg_id": f"msg_{m}",
            "endpoint_id": f"ep_{e}",
            "status": status,
            "trigger_type": 0,
            "attempt_count": 1,
            "created_at": _T0 + timedelta(minutes=25 * m),
            "updated_at": _T0,
        }
        for m, e, status in [(0, 1, 0), (1, 1, 2), (2, 1, 0), (3, 1, 1), (0, 2, 4), (1, 2, 0)]
    ],
    "attempt": [
        {
            "id": f"atmpt_{n}",
            "app_id": "app_1",
            "msg_id": f"msg_{m}",
            "endpoint_id": "ep_1",
            "delivery_id": f"dlv_{m}_1",
            "url": "https://example.test/",
            "status": status,
            "trigger_type": 0,
            "response_status_code": 200,
            "response": "",
            "response_duration_ms": 1,
            "created_at": at,
        }
        for n, (m, status, at) in enumerate(
            [
                (0, 0, _T0),
                (1, 2, _T0 + timedelta(minutes=30)),
                (2, 2, _T0 + timedelta(minutes=50)),
                (2, 0, _T0 + timedelta(hours=2)),
            ]
        )
    ],
}
_TYPES = {"created_at": sa.DateTime(timezone=True), "updated_at": sa.DateTime(timezone=True)}


async def _load_and_read(database_url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            if not sql:
                for name, rows in _ROWS.items():
                    table = sa.table(name, *(sa.column(key, _TYPES.get(key)) for key in rows[0]))
                    await connection.execute(sa.insert(table), rows)
                return []
            result = await connection.execute(sa.text(sql).columns(period=sa.DateTime(timezone=True)))
            return [tuple(row) for row in result]
    finally:
        await engine.dispose()


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


def _rollup_filled_from_history(tmp_path: Path, database_url: str | None = None) -> None:
    settings = make_settings(tmp_path, **({"database_url": database_url} if database_url else {}))
    command.upgrade(alembic_config(settings), "0007")
    asyncio.run(_load_and_read(settings.database_url, ""))

    upgrade_to_head(settings)

    rows = asyncio.run(
        _load_and_read(
            settings.database_url,
            "SELECT endpoint_id, period, success, fail, canceled, attempt_success, attempt_fail"
            " FROM endpoint_rollup ORDER BY endpoint_id, period",
        )
    )
    hour = datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert [(e, as_utc(p), *counts) for e, p, *counts in rows] == [
        ("ep_1", hour, 1, 1, 0, 1, 1),  # deliveries of 10:20 (success), 10:45 (fail); attempts 10:20, 10:50
        (
            "ep_1",
            hour + timedelta(hours=1),
            1,
            0,
            0,
            0,
            1,
        ),  # 11:10 success, a failed attempt at 11:10; 11:35 pending is not counted
        ("ep_1", hour + timedelta(hours=2), 0, 0, 0, 1, 0),  # the attempt at 12:20
        ("ep_2", hour, 1, 0, 1, 0, 0),
    ]


def test_sqlite_migration_fills_the_rollup_from_existing_rows(tmp_path: Path) -> None:
    _rollup_filled_from_history(tmp_path)


def test_postgres_migration_fills_the_rollup_from_existing_rows(tmp_path: Path) -> None:
    with fresh_postgres_database() as database_url:
        _rollup_filled_from_history(tmp_path, database_url)


def _tokens_keep_what_they_could_do(tmp_path: Path, database_url: str | None = None) -> None:
    """0012 on tokens minted before it: a read-only one reads only (ViewBase), any other gets every
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


def _destinations_over_existing_rows(tmp_path: Path, database_url: str | None = None) -> None:
    """0013 on a database holding applications and deliveries: they stay, and a destination
    can belong to an existing application."""
    settings = make_settings(tmp_path, **({"database_url": database_url} if database_url else {}))
    command.upgrade(alembic_config(settings), "0009")
    asyncio.run(_load_and_read(settings.database_url, ""))

    upgrade_to_head(settings)
    command.check(alembic_config(settings))

    async def add_and_read() -> list[tuple[object, ...]]:
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    sa.text(
                        "INSERT INTO destination (id, app_id, type, status, batch_size, max_wait_secs, metadata,"
                        " config, created_at, updated_at) VALUES ('dest_1', 'app_1', 'pollingEndpoint', 'enabled',"
                        " 100, 1, '{}', '', :at, :at)"
                    ),
                    {"at": _T0},
                )
                result = await connection.execute(
                    sa.text(
                        "SELECT d.id, a.id, (SELECT count(*) FROM delivery) FROM destination AS d"
                        " JOIN application AS a ON a.id = d.app_id"
                    )
                )
                return [tuple(row) for row in result]
        finally:
            await engine.dispose()

    assert asyncio.run(add_and_read()) == [("dest_1", "app_1", len(_ROWS["delivery"]))]


def test_sqlite_destinations_migrate_over_existing_rows(tmp_path: Path) -> None:
    _destinations_over_existing_rows(tmp_path)


def test_postgres_destinations_migrate_over_existing_rows(tmp_path: Path) -> None:
    with fresh_postgres_database() as database_url:
        _destinations_over_existing_rows(tmp_path, database_url)


# A message sent the day the old schema was in use, with a real id, its delivery and attempt.
_DAY_ID = first_id_at("msg", int(_T0.timestamp() * 1000))
_DATED = {
    "message": [{**_ROWS["message"][0], "id": _DAY_ID}],
    "delivery": [{**_ROWS["delivery"][0], "id": "dlv_dated", "msg_id": _DAY_ID}],
    "attempt": [{**_ROWS["attempt"][0], "id": "atmpt_dated", "msg_id": _DAY_ID, "delivery_id": "dlv_dated"}],
}
_WHERE = "SELECT {table}.tableoid::regclass::text, count(*) FROM {table} GROUP BY 1 ORDER BY 1"


async def _insert(database_url: str, rows: dict[str, list[dict[str, object]]]) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            for name, table_rows in rows.items():
                table = sa.table(name, *(sa.column(key, _TYPES.get(key)) for key in table_rows[0]))
                await connection.execute(sa.insert(table), table_rows)
    finally:
        await engine.dispose()


async def _read(database_url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in await connection.execute(sa.text(sql))]
    finally:
        await engine.dispose()


def _history_kept_through_0015(tmp_path: Path, database_url: str | None = None) -> dict[str, object]:
    settings = make_settings(tmp_path, **({"database_url": database_url} if database_url else {}))
    command.upgrade(alembic_config(settings), "0009")
    asyncio.run(_insert(settings.database_url, _ROWS))
    asyncio.run(_insert(settings.database_url, _DATED))
    counts = "SELECT (SELECT count(*) FROM message), (SELECT count(*) FROM delivery), (SELECT count(*) FROM attempt)"
    before = asyncio.run(_read(settings.database_url, counts))

    upgrade_to_head(settings)

    assert asyncio.run(_read(settings.database_url, counts)) == before == [(5, 7, 5)]
    command.check(alembic_config(settings))
    if database_url is None:
        return {}
    return {table: asyncio.run(_read(settings.database_url, _WHERE.format(table=table))) for table in _DATED}


def test_sqlite_migration_keeps_the_history(tmp_path: Path) -> None:
    _history_kept_through_0015(tmp_path)


def test_postgres_migration_moves_the_history_into_daily_partitions(tmp_path: Path) -> None:
    with fresh_postgres_database() as database_url:
        where = _history_kept_through_0015(tmp_path, database_url)

    # The dated rows in their week's partitions (from Monday 23 February), the hand-made ids
    # ("msg_1") in the default ones.
    assert where == {
        "message": [("message_default", 4), ("message_p20260223", 1)],
        "delivery": [("delivery_default", 6), ("delivery_p20260223", 1)],
        "attempt": [("attempt_default", 4), ("attempt_p20260223", 1)],
    }


def _fifo_delivery_over_existing_rows(tmp_path: Path, database_url: str | None = None) -> None:
    """0016 on a database holding a FIFO destination from 0014: it stays, and can be given its
    position and attempts; downgrading to 0015 drops only 0016's tables."""
    settings = make_settings(tmp_path, **({"database_url": database_url} if database_url else {}))
    config = alembic_config(settings)
    command.upgrade(config, "0014")
    asyncio.run(_load_and_read(settings.database_url, ""))

    async def execute(*statements: str) -> list[tuple[object, ...]]:
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.begin() as connection:
                result = None
                for statement in statements:
                    result = await connection.execute(sa.text(statement), {"at": _T0})
                return [tuple(row) for row in result] if result is not None and result.returns_rows else []
        finally:
            await engine.dispose()

    asyncio.run(
        execute(
            "INSERT INTO destination (id, app_id, type, status, batch_size, max_wait_secs, metadata,"
            " config, created_at, updated_at) VALUES ('dest_1', 'app_1', 'fifoEndpoint', 'enabled',"
            " 100, 1, '{}', '', :at, :at)"
        )
    )
    upgrade_to_head(settings)
    command.check(config)
    rows = asyncio.run(
        execute(
            "INSERT INTO fifo_lease (destination_id, position, attempt_count, updated_at)"
            " VALUES ('dest_1', 'msg_0', 0, :at)",
            "INSERT INTO destination_attempt (id, destination_id, app_id, first_msg_id, last_msg_id, message_count,"
            " url, status, response_status_code, response, response_duration_ms, created_at)"
            " VALUES ('datmpt_1', 'dest_1', 'app_1', 'msg_0', 'msg_1', 2, 'https://example.test/', 0, 200, '', 5, :at)",
            "SELECT f.position, a.message_count, d.type FROM fifo_lease AS f"
            " JOIN destination AS d ON d.id = f.destination_id"
            " JOIN destination_attempt AS a ON a.destination_id = d.id",
        )
    )
    assert rows == [("msg_0", 2, "fifoEndpoint")]
    command.downgrade(config, "0015")
    assert {"fifo_lease", "destination_attempt"}.isdisjoint(asyncio.run(_tables(settings.database_url)))
    assert asyncio.run(execute("SELECT id FROM destination")) == [("dest_1",)]


def test_sqlite_fifo_delivery_migrates_over_existing_rows(tmp_path: Path) -> None:
    _fifo_delivery_over_existing_rows(tmp_path)


def test_postgres_fifo_delivery_migrates_over_existing_rows(tmp_path: Path) -> None:
    with fresh_postgres_database() as database_url:
        _fifo_delivery_over_existing_rows(tmp_path, database_url)


_UNREAD = {
    "message": "ix_message_created_at",
    "attempt": "ix_attempt_delivery_id",
    "endpoint": "ix_endpoint_app_id",
    "destination": "ix_destination_app_id",
}


def _indexes(database_url: str, *tables: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(
                    lambda sync: {i["name"] for table in tables or _UNREAD for i in inspect(sync).get_indexes(table)}
                )
        finally:
            await engine.dispose()

    return asyncio.run(read())


def _unread_indexes_go_and_come_back(tmp_path: Path, database_url: str | None = None) -> None:
    """0018 over a database holding rows: the unread indexes go, the rows stay, and on
    PostgreSQL every delivery partition leaves room for HOT updates; down brings them back."""
    settings = make_settings(tmp_path, **({"database_url": database_url} if database_url else {}))
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    config = alembic_config(settings)
    command.upgrade(config, "0017")
    asyncio.run(_load_and_read(settings.database_url, ""))
    counts = "SELECT (SELECT count(*) FROM message), (SELECT count(*) FROM delivery), (SELECT count(*) FROM attempt)"
    fillfactors = (
        "SELECT c.relname, c.reloptions FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'delivery' ORDER BY 1"
    )
    assert set(_UNREAD.values()) <= _indexes(settings.database_url)

    command.upgrade(config, "0018")
    assert set(_UNREAD.values()).isdisjoint(_indexes(settings.database_url))
    assert "ix_delivery_endpoint_id" in _indexes(settings.database_url, "delivery")
    assert asyncio.run(_execute(settings.database_url, counts)) == [(4, 6, 4)]
    if not settings.is_sqlite:
        partitions = asyncio.run(_execute(settings.database_url, fillfactors))
        assert len(partitions) > 1
        assert all(options == ["fillfactor=80"] for _, options in partitions), partitions

    command.downgrade(config, "0017")
    assert set(_UNREAD.values()) <= _indexes(settings.database_url)
    assert "ix_delivery_endpoint_id" not in _indexes(settings.database_url, "delivery")
    assert asyncio.run(_execute(settings.database_url, counts)) == [(4, 6, 4)]
    if not settings.is_sqlite:
        assert all(options is None for _, options in asyncio.run(_execute(settings.database_url, fillfactors)))
    upgrade_to_head(settings)


def test_sqlite_unread_indexes_migrate_over_existing_rows(tmp_path: Path) -> None:
    _unread_indexes_go_and_come_back(tmp_path)


def test_postgres_unread_indexes_migrate_over_existing_rows(tmp_path: Path) -> None:
    with fresh_postgres_database() as database_url:
        _unread_indexes_go_and_come_back(tmp_path, database_url)
