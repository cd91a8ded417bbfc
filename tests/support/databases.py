"""A fresh database per test: PostgreSQL ones created and dropped on the real server, and a
new database at head copied from a template migrated once per test process."""

from __future__ import annotations

import asyncio
import atexit
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from hookpost.settings import Settings
from hookpost.storage import migrate
from tests.support.services import POSTGRES_URL, require


async def _execute(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@contextmanager
def fresh_postgres_database(prefix: str = "hookpost_test") -> Iterator[str]:
    """Yield the URL of a new, empty database (its name begins with ``prefix``); drop it afterwards."""
    admin_url = require("PostgreSQL", POSTGRES_URL)
    name = f"{prefix}_{secrets.token_hex(6)}"
    asyncio.run(_execute(admin_url, f'CREATE DATABASE "{name}"'))
    _made_here.add(name)
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- databases at head, copied from a template ------------------------------------------------
# Alembic's whole chain costs about a second of CPU per database (more on PostgreSQL), and most
# tests want nothing but an empty database at head: each test process migrates one template per
# database kind, once, and a new database is a copy of it. A database that already holds tables
# (a test that migrated part of the way, or wrote rows first) is upgraded by Alembic as before.

_templates: dict[str, str] = {}  # "sqlite": the template's file, "postgres": its database's name
# The databases ``fresh_postgres_database`` made on the test server: only these are ever made
# anew from the template (a test's own PostgreSQL server, or one in a namespace, is migrated).
_made_here: set[str] = set()


def upgrade_to_head(settings: Settings) -> None:
    """``hookpost.storage.migrate.upgrade_to_head``, from a copy of a template where the
    settings' database is new."""
    if settings.is_sqlite:
        path = Path(make_url(settings.database_url).database or "")
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_sqlite_head(settings), path)
            return
    elif _is_fresh(settings.database_url) and asyncio.run(_is_empty(settings.database_url)):
        asyncio.run(_copy_postgres_template(settings))
        return
    migrate.upgrade_to_head(settings)


def _sqlite_head(settings: Settings) -> Path:
    if "sqlite" not in _templates:
        folder = Path(tempfile.mkdtemp(prefix="hookpost-template-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        template = settings.model_copy(
            update={"data_dir": folder, "database_url": f"sqlite+aiosqlite:///{folder}/head.db"}
        )
        migrate.upgrade_to_head(template)
        with sqlite3.connect(folder / "head.db") as connection:  # everything in the one file
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        _templates["sqlite"] = str(folder / "head.db")
    return Path(_templates["sqlite"])


def _is_fresh(url: str) -> bool:
    """Whether ``url`` names a database ``fresh_postgres_database`` made, on the test server."""
    made, server = make_url(url), make_url(POSTGRES_URL)
    return made.database in _made_here and (made.host, made.port) == (server.host, server.port)


async def _is_empty(url: str) -> bool:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            tables = await connection.scalar(text("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"))
    finally:
        await engine.dispose()
    return tables == 0


async def _copy_postgres_template(settings: Settings) -> None:
    """Make the settings' (empty) database anew as a copy of the template, under the same name."""
    admin_url = require("PostgreSQL", POSTGRES_URL)
    if "postgres" not in _templates:
        name = f"hookpost_template_{secrets.token_hex(6)}"
        await _execute(admin_url, f'CREATE DATABASE "{name}"')
        atexit.register(lambda: asyncio.run(_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')))
        template_url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        # Alembic runs its own event loop: off this one, in a thread.
        await asyncio.to_thread(migrate.upgrade_to_head, settings.model_copy(update={"database_url": template_url}))
        _templates["postgres"] = name
    database = make_url(settings.database_url).database
    await _execute(admin_url, f'DROP DATABASE "{database}" WITH (FORCE)')
    await _execute(admin_url, f'CREATE DATABASE "{database}" TEMPLATE "{_templates["postgres"]}"')
