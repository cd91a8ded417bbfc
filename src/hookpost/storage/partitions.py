"""PostgreSQL: messages, deliveries and attempts kept in one partition per week (UTC,
Monday to Monday), named by its Monday.

All three are partitioned on the message's id (``message.id``, ``delivery.msg_id``,
``attempt.msg_id``): ids begin with their creation time (kit/ids.py), so a week is a range
of ids, and a message's deliveries and attempts sit in the partitions of its own week.
Keying on the id rather than on ``created_at`` keeps the primary keys as they were and lets
a lookup by message id read one partition. A week whose end is past the retention is dropped
whole, three tables at once, unless a delivery in it is still owed (retention.py).

Weeks, not days: a query that cannot be pruned to one partition (a list by application, the
due deliveries, an update by delivery id) is planned over every partition; at 41 (30 days'
retention in days) that took 1.5 to 2.4 ms a query here, at 16 about 0.35 ms. The cost: a
row lives up to a week past the retention.

Ids outside every week's range (made by hand, or a week the upkeep has not made yet) land
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
PERIOD = timedelta(days=7)
WEEKS_AHEAD = 2  # weeks made beyond the current one: always 7 days or more, so ingest never waits on the upkeep
_NAME = re.compile(r"^(message|delivery|attempt)_p(\d{8})$")
# Unique within a partition only: PostgreSQL's unique indexes on a partitioned table must hold
# its key. Repeats across weeks are found by a lookup before the insert (messages/writer.py).
# Room left on each page of a delivery partition: a delivery's claim, lease and retry are
# written on its row again and again; with room on the page and no indexed column changed,
# PostgreSQL makes the new version in place without index entries (a HOT update).
DELIVERY_FILLFACTOR = 80
MESSAGE_LOCAL_UNIQUE = (("event_id_key", "event_id"), ("idempotency_key_key", "idempotency_key"))


def is_partition(table_name: str) -> bool:
    """A partition (a week's or the default), not a table of the models."""
    return bool(_NAME.match(table_name)) or table_name in {f"{table}_default" for table in PARTITIONED}


def period_of(day: date) -> date:
    """The Monday that starts the day's week: a partition's first day."""
    return day - timedelta(days=day.weekday())


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{period_of(day):%Y%m%d}"


def period_in(name: str) -> date | None:
    match = _NAME.match(name)
    return None if match is None else datetime.strptime(match.group(2), "%Y%m%d").replace(tzinfo=UTC).date()


def day_start_id(day: date) -> str:
    """The smallest message id of that UTC day."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return first_id_at("msg", int(start.timestamp() * 1000))


def period_bounds(day: date) -> tuple[str, str]:
    """The ids of the week holding ``day``: from its Monday to the next."""
    start = period_of(day)
    return day_start_id(start), day_start_id(start + PERIOD)


def create_period_statements(day: date) -> list[str]:
    """DDL for the three partitions of the week holding ``day`` (idempotent)."""
    low, high = period_bounds(day)
    statements = []
    for table in PARTITIONED:
        name = partition_name(table, day)
        storage = f" WITH (fillfactor = {DELIVERY_FILLFACTOR})" if table == "delivery" else ""
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} FOR VALUES FROM ('{low}') TO ('{high}'){storage}"
        )
    statements += local_unique_statements(partition_name("message", day))
    return statements


def local_unique_statements(message_partition: str) -> list[str]:
    return [
        f"CREATE UNIQUE INDEX IF NOT EXISTS {message_partition}_app_id_{suffix} "
        f"ON {message_partition} (app_id, {column})"
        for suffix, column in MESSAGE_LOCAL_UNIQUE
    ]


async def existing_periods(connection: AsyncConnection) -> list[date]:
    """The weeks that have partitions (their Mondays), oldest first."""
    rows = await connection.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'message'"
        )
    )
    return sorted(day for day in (period_in(name) for (name,) in rows) if day is not None)


async def is_partitioned(connection: AsyncConnection) -> bool:
    found = await connection.scalar(
        text("SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'message'::regclass")
    )
    return bool(found)


def periods_ahead(today: date) -> list[date]:
    """The current week and the next ``WEEKS_AHEAD`` (their Mondays)."""
    return [period_of(today) + n * PERIOD for n in range(WEEKS_AHEAD + 1)]


async def make_periods_ahead(connection: AsyncConnection, today: date) -> list[date]:
    """Make this week's partitions and the next ``WEEKS_AHEAD``; return the weeks made."""
    have = set(await existing_periods(connection))
    made = []
    for start in periods_ahead(today):
        if start not in have:
            for statement in create_period_statements(start):
                await connection.execute(text(statement))
            made.append(start)
    return made


async def drop_period(connection: AsyncConnection, day: date) -> None:
    for table in PARTITIONED:
        await connection.execute(text(f"DROP TABLE IF EXISTS {partition_name(table, day)}"))
