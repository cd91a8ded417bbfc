"""PostgreSQL: messages, deliveries and attempts kept in one partition per UTC day.

All three are partitioned on the message's id (``message.id``, ``delivery.msg_id``,
``attempt.msg_id``): ids begin with their creation time (kit/ids.py), so a day is a range
of ids, and a message's deliveries and attempts sit in the partitions of its own day. Keying
on the id rather than on ``created_at`` keeps the primary keys as they were and lets a
lookup by message id read one partition. A day whose end is past the retention is dropped
whole, three tables at once, unless a delivery in it is still owed (retention.py).

Ids outside every day's range (made by hand, or a day the upkeep has not made yet) land
in each table's ``_default`` partition, which retention empties by batched deletes.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from hookpost.kit.ids import first_id_at

# Table -> the column it is partitioned on: the message's id in all three.
PARTITIONED = {"message": "id", "delivery": "msg_id", "attempt": "msg_id"}
DAYS_AHEAD = 7  # days made in advance, so ingest never waits on the upkeep
_DAY_NAME = re.compile(r"^(message|delivery|attempt)_p(\d{8})$")
# Unique within a partition only: PostgreSQL's unique indexes on a partitioned table must hold
# its key. Repeats across days are found by a lookup before the insert (messages/service.py).
MESSAGE_LOCAL_UNIQUE = (("event_id_key", "event_id"), ("idempotency_key_key", "idempotency_key"))


def is_partition(table_name: str) -> bool:
    """A partition (a day's or the default), not a table of the models."""
    return bool(_DAY_NAME.match(table_name)) or table_name in {f"{table}_default" for table in PARTITIONED}


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def day_of(name: str) -> date | None:
    match = _DAY_NAME.match(name)
    return None if match is None else datetime.strptime(match.group(2), "%Y%m%d").replace(tzinfo=UTC).date()


def day_start_id(day: date) -> str:
    """The smallest message id of that UTC day."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return first_id_at("msg", int(start.timestamp() * 1000))


def day_bounds(day: date) -> tuple[str, str]:
    return day_start_id(day), day_start_id(day + timedelta(days=1))


def create_day_statements(day: date) -> list[str]:
    """DDL for the day's three partitions (idempotent)."""
    low, high = day_bounds(day)
    statements = []
    for table in PARTITIONED:
        name = partition_name(table, day)
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} FOR VALUES FROM ('{low}') TO ('{high}')"
        )
    statements += local_unique_statements(partition_name("message", day))
    return statements


def local_unique_statements(message_partition: str) -> list[str]:
    return [
        f"CREATE UNIQUE INDEX IF NOT EXISTS {message_partition}_app_id_{suffix} "
        f"ON {message_partition} (app_id, {column})"
        for suffix, column in MESSAGE_LOCAL_UNIQUE
    ]


async def existing_days(connection: AsyncConnection) -> list[date]:
    """The days that have partitions, oldest first."""
    rows = await connection.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'message'"
        )
    )
    return sorted(day for day in (day_of(name) for (name,) in rows) if day is not None)


async def is_partitioned(connection: AsyncConnection) -> bool:
    found = await connection.scalar(
        text("SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'message'::regclass")
    )
    return bool(found)


async def make_days_ahead(connection: AsyncConnection, today: date) -> list[date]:
    """Make today's partitions and the next ``DAYS_AHEAD`` days'; return the days made."""
    have = set(await existing_days(connection))
    made = []
    for offset in range(DAYS_AHEAD + 1):
        day = today + timedelta(days=offset)
        if day not in have:
            for statement in create_day_statements(day):
                await connection.execute(text(statement))
            made.append(day)
    return made


async def drop_day(connection: AsyncConnection, day: date) -> None:
    for table in PARTITIONED:
        await connection.execute(text(f"DROP TABLE IF EXISTS {partition_name(table, day)}"))
