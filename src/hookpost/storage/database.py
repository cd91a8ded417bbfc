"""Engine and sessions, one code path for SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from hookpost.kit import secret_box
from hookpost.observability import tracing
from hookpost.settings import Settings


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while a worker writes; FULL sync because a 202 promises durability;
    # busy_timeout because several processes share the file.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # Take transactions into our own hands (see _sqlite_begin).
    dbapi_connection.isolation_level = None


def _sqlite_begin(connection: Connection) -> None:
    # IMMEDIATE takes the write lock up front: two processes that both read then write
    # would otherwise deadlock on the lock upgrade and fail at once, busy_timeout or not.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(
    settings: Settings, *, statement_timeout: float | None = None, autocommit: bool = False, pre_ping: bool = True
) -> AsyncEngine:
    """The engine; with ``statement_timeout`` (PostgreSQL), no statement waits longer for
    the server, so a server that stops answering (rather than refusing) cannot hang a caller.
    ``autocommit`` (PostgreSQL): for callers whose every write is one statement. ``pre_ping``
    checks each pooled connection before use; a caller that retries a failed transaction
    anyway can do without."""
    # Every process opens its database here: its key ring for the encrypted columns too.
    secret_box.configure(settings.secret_keys())
    kwargs: dict[str, Any] = {}
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    else:
        # Bounded waits: while the server is unreachable a request fails within these
        # (as a 503) instead of hanging on asyncpg's 60 s connect or a 30 s pool wait.
        kwargs.update(
            pool_size=10,
            max_overflow=20,
            pool_pre_ping=pre_ping,
            pool_timeout=settings.database_timeout,
            connect_args={"timeout": settings.database_timeout, "command_timeout": statement_timeout},
        )
        if autocommit:
            # Also makes the pre-ping one round trip: outside autocommit it is BEGIN, ping, ROLLBACK.
            kwargs["isolation_level"] = "AUTOCOMMIT"
    engine = create_async_engine(settings.database_url, **kwargs)
    if settings.is_sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    tracing.instrument_engine(engine)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# SQLSTATE classes of a server that is not there for now: connection exceptions (08),
# shutting down or starting up (57P), out of connections or resources (53).
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53")
_SQLITE_UNAVAILABLE = ("database is locked", "unable to open database", "disk I/O error")


def database_refused_value(error: BaseException) -> bool:
    """True for PostgreSQL's "data exception" (SQLSTATE class 22): a value it cannot take,
    such as a NUL character in text, whichever path, query or body field it came from."""
    sqlstate = getattr(getattr(error, "orig", None), "sqlstate", None)
    return isinstance(error, DBAPIError) and isinstance(sqlstate, str) and sqlstate.startswith("22")


def database_unavailable(error: BaseException) -> bool:
    """True for an error that says the database cannot be reached now, not that the request is wrong."""
    if isinstance(error, OSError | TimeoutError | PoolTimeout):  # refused, reset, timed out
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    sqlstate = getattr(error.orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
    message = str(error.orig)
    return any(text in message for text in _SQLITE_UNAVAILABLE) or isinstance(error.orig, OSError)
