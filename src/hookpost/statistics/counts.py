"""Keeping the endpoint rollup: each writer of a delivery's state adds its changes here, and
they are stored in one statement in the writer's own transaction."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.kit.time import as_utc
from hookpost.storage.models import EndpointRollup, MessageStatus

_ROLLUP = cast(Table, EndpointRollup.__table__)
COUNTERS = ("success", "fail", "canceled", "attempt_success", "attempt_fail")
# The delivery states the rollup counts; pending is the backlog, read as it is.
_SETTLED = {MessageStatus.SUCCESS: "success", MessageStatus.FAIL: "fail", MessageStatus.CANCELED: "canceled"}


def hour_of(moment: datetime) -> datetime:
    return as_utc(moment).replace(minute=0, second=0, microsecond=0)


def next_hour(moment: datetime) -> datetime:
    start = hour_of(moment)
    return start if start == as_utc(moment) else start + timedelta(hours=1)


class Counts:
    """Changes to the rollup, summed per (endpoint, hour) before they are stored."""

    def __init__(self) -> None:
        self._changes: dict[tuple[str, datetime], Counter[str]] = {}
        self._apps: dict[str, str] = {}

    def _add(self, app_id: str, endpoint_id: str, moment: datetime, counter: str, change: int) -> None:
        self._apps[endpoint_id] = app_id
        self._changes.setdefault((endpoint_id, hour_of(moment)), Counter())[counter] += change

    def attempt(self, app_id: str, endpoint_id: str, at: datetime, *, succeeded: bool) -> None:
        self._add(app_id, endpoint_id, at, "attempt_success" if succeeded else "attempt_fail", 1)

    def settled(self, app_id: str, endpoint_id: str, created_at: datetime, status: int) -> None:
        """A delivery (created then) moved from pending to ``status``."""
        if status in _SETTLED:
            self._add(app_id, endpoint_id, created_at, _SETTLED[MessageStatus(status)], 1)

    def reopened(self, app_id: str, endpoint_id: str, created_at: datetime, status: int | None) -> None:
        """A delivery (created then) in ``status`` made pending again (resend, replay, recover)."""
        if status in _SETTLED:
            self._add(app_id, endpoint_id, created_at, _SETTLED[MessageStatus(status)], -1)

    def rows(self) -> list[dict[str, Any]]:
        # Sorted: two transactions adding to the same rows lock them in the same order, never in a cycle.
        return [
            {"endpoint_id": endpoint_id, "period": period, "app_id": self._apps[endpoint_id]}
            | {name: changes[name] for name in COUNTERS}
            for (endpoint_id, period), changes in sorted(self._changes.items())
            if any(changes.values())
        ]


async def store_counts(session: AsyncSession, counts: Counts) -> None:
    """Add the changes to the rollup: one executemany upsert, in the caller's transaction."""
    rows = counts.rows()
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    statement = postgresql.insert(_ROLLUP) if dialect == "postgresql" else sqlite.insert(_ROLLUP)
    statement = statement.on_conflict_do_update(
        index_elements=[_ROLLUP.c.endpoint_id, _ROLLUP.c.period],
        set_={name: _ROLLUP.c[name] + statement.excluded[name] for name in COUNTERS},
    )
    await session.execute(statement, rows)
