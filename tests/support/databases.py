"""A fresh PostgreSQL database per test, created and dropped on the real server."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

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
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
