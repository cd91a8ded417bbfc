"""The statements of a batch of new messages (``service.MessageWriter``), per database.

On PostgreSQL two, fixed SQL text run as it is: nothing to compile, nor a cache key to build,
per batch, and asyncpg keeps each one prepared on its connection; the rows go as one array
per column (``unnest``), so a statement's text is the same whatever the batch's size. py-spy
put SQLAlchemy's compile and cache keys at a good part of the batch's work. The applications
and their endpoints are read first; then the messages and their deliveries are one statement,
in autocommit. Elsewhere (SQLite) SQLAlchemy Core statements in one transaction, whose
compiled form SQLAlchemy caches.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import Table, and_, insert, or_, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from hookpost.operational.ids import OPERATIONAL_APP_ID
from hookpost.storage.models import Application, Delivery, Endpoint, Message


class NewMessageRow(NamedTuple):
    id: str
    app_id: str
    idempotency_key: str | None
    event_id: str | None
    event_type: str
    payload: str  # the JSON text, stored as it is
    channels: list[str] | None
    tags: list[str] | None
    created_at: datetime
    deliver_at: datetime | None
    payload_expires_at: datetime | None
    traceparent: str | None


class NewDeliveryRow(NamedTuple):
    id: str
    app_id: str
    msg_id: str
    endpoint_id: str
    status: int
    trigger_type: int
    attempt_count: int
    next_attempt_at: datetime
    queued_until: datetime | None
    created_at: datetime
    updated_at: datetime


# An application's id, uid, and one of its enabled endpoints (id, event types, channels), or
# None for each of the endpoint's three for an application without one.
TargetRow = tuple[str, str | None, str | None, list[str] | None, list[str] | None]


class BatchStatements(Protocol):
    async def targets(self, session: AsyncSession, refs: Sequence[str]) -> Sequence[TargetRow]:
        """The applications named (by id or uid), each with its enabled endpoints. The
        batch's first statement."""

    async def insert(
        self, session: AsyncSession, messages: Sequence[NewMessageRow], deliveries: Sequence[NewDeliveryRow]
    ) -> set[str]:
        """Store the messages, and the deliveries of those stored; durable once the session
        commits. Returns the ids of the messages stored: a repeat of an idempotency key or
        eventId is skipped, and so are its deliveries."""


_MESSAGE = cast(Table, Message.__table__)
_DELIVERY = cast(Table, Delivery.__table__)


class CoreStatements:
    async def targets(self, session: AsyncSession, refs: Sequence[str]) -> Sequence[TargetRow]:
        rows = await session.execute(
            select(Application.id, Application.uid, Endpoint.id, Endpoint.event_types, Endpoint.channels)
            .outerjoin(Endpoint, and_(Endpoint.app_id == Application.id, Endpoint.disabled.is_(False)))
            .where(or_(Application.id.in_(refs), Application.uid.in_(refs)), Application.id != OPERATIONAL_APP_ID)
        )
        return [cast(TargetRow, tuple(row)) for row in rows]

    async def insert(
        self, session: AsyncSession, messages: Sequence[NewMessageRow], deliveries: Sequence[NewDeliveryRow]
    ) -> set[str]:
        statement = sqlite_insert(_MESSAGE).on_conflict_do_nothing().returning(_MESSAGE.c.id)
        inserted = set((await session.scalars(statement, [row._asdict() for row in messages])).all())
        kept = [row._asdict() for row in deliveries if row.msg_id in inserted]
        if kept:
            await session.execute(insert(_DELIVERY), kept)
        return inserted


def _columns(row_type: type[NamedTuple], first: int, types: Sequence[str]) -> tuple[str, str]:
    """The row type's column names, and as many array parameters (``$first::type[]``, ...)."""
    names = ", ".join(row_type._fields)
    arrays = ", ".join(f"${index}::{kind}[]" for index, kind in enumerate(types, start=first))
    return names, arrays


_MESSAGE_NAMES, _MESSAGE_ARRAYS = _columns(
    NewMessageRow,
    1,
    ("varchar",) * 5 + ("text", "json", "json") + ("timestamptz",) * 3 + ("varchar",),
)
_DELIVERY_NAMES, _DELIVERY_ARRAYS = _columns(
    NewDeliveryRow,
    len(NewMessageRow._fields) + 1,
    ("varchar",) * 4 + ("int",) * 3 + ("timestamptz",) * 4,
)
_PG_TARGETS = (
    "SELECT a.id, a.uid, e.id, e.event_types, e.channels FROM application AS a "
    "LEFT OUTER JOIN endpoint AS e ON e.app_id = a.id AND e.disabled IS false "
    "WHERE (a.id = ANY($1::varchar[]) OR a.uid = ANY($1::varchar[])) AND a.id <> $2::varchar"
)
# One statement, so one round trip and atomic on its own (the session runs it in autocommit:
# no BEGIN and COMMIT round trips either); the deliveries of a skipped repeat are dropped.
_PG_INSERT = (
    f"WITH stored AS (INSERT INTO message ({_MESSAGE_NAMES}) SELECT * FROM unnest({_MESSAGE_ARRAYS}) "  # noqa: S608
    "ON CONFLICT DO NOTHING RETURNING id), "
    f"planned AS (SELECT * FROM unnest({_DELIVERY_ARRAYS}) AS d({_DELIVERY_NAMES})), "
    f"deliveries AS (INSERT INTO delivery ({_DELIVERY_NAMES}) "
    f"SELECT * FROM planned WHERE planned.msg_id IN (SELECT id FROM stored)) "
    "SELECT id FROM stored"
)
_JSON_COLUMNS = frozenset({"channels", "tags"})


def _as_arrays(rows: Sequence[tuple[Any, ...]], fields: Sequence[str]) -> tuple[list[Any], ...]:
    columns: tuple[list[Any], ...] = tuple([row[index] for row in rows] for index in range(len(fields)))
    for index, name in enumerate(fields):
        if name in _JSON_COLUMNS:
            # As SQLAlchemy's JSON type stores them: None as JSON null, not SQL NULL.
            columns[index][:] = [json.dumps(value) for value in columns[index]]
    return columns


_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


async def _fetch(connection: AsyncConnection, statement: str, arguments: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
    """The statement's rows, run on the asyncpg connection itself: SQLAlchemy's adaptation
    (its cursor, a greenlet switch per call) was a good part of the batch's CPU. Should it
    fail, the same statement through SQLAlchemy, which reports the error as the rest of the
    code expects (``database_unavailable``, a refused value) and invalidates a broken
    connection; a statement that failed changed nothing (one statement, in autocommit), so it
    can run again; one that timed out is not known to have failed."""
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection  # an asyncpg.Connection (untyped)
    try:
        return cast(Sequence[Sequence[Any]], await driver.fetch(statement, *arguments))
    except TimeoutError:
        raise  # the statement may have committed after all: not run twice (a 503, as before)
    except Exception:
        # One parameter set: a tuple, in a list (a bare tuple of lists would read as many sets).
        return list(await connection.exec_driver_sql(statement, [arguments]))


class PostgresStatements:
    async def targets(self, session: AsyncSession, refs: Sequence[str]) -> Sequence[TargetRow]:
        # The batch engine does not pre-ping: a pooled connection the server has dropped
        # (a restart) fails this read, which wrote nothing, so it runs once more on a new one
        # (SQLAlchemy's invalidation recycles the pool's older connections too).
        arguments = (list(refs), OPERATIONAL_APP_ID)
        try:
            rows = await _fetch(await session.connection(execution_options=_AUTOCOMMIT), _PG_TARGETS, arguments)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            await session.rollback()  # lets go of the broken connection
            rows = await _fetch(await session.connection(execution_options=_AUTOCOMMIT), _PG_TARGETS, arguments)
        return [cast(TargetRow, tuple(row)) for row in rows]

    async def insert(
        self, session: AsyncSession, messages: Sequence[NewMessageRow], deliveries: Sequence[NewDeliveryRow]
    ) -> set[str]:
        connection = await session.connection()  # the autocommit one ``targets`` began with
        parameters = _as_arrays(messages, NewMessageRow._fields) + _as_arrays(deliveries, NewDeliveryRow._fields)
        return {row[0] for row in await _fetch(connection, _PG_INSERT, parameters)}


def batch_statements(is_sqlite: bool) -> BatchStatements:
    return CoreStatements() if is_sqlite else PostgresStatements()
