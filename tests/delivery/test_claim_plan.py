"""The claim on PostgreSQL: its prepared statement's generic plan takes the due set from the
partial index ``ix_delivery_due`` and finds the rows it leases by their key, not by reading
the whole backlog (docs/performance.md)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from hookpost.delivery.claim import _lease_statement
from hookpost.kit.time import utcnow
from hookpost.storage.migrate import upgrade_to_head
from tests.conftest import make_settings
from tests.support.databases import fresh_postgres_database

BACKLOG = 2000  # pending and due; as many settled beside them
TAKEN = 20


def _literal(value: Any) -> str:
    if isinstance(value, list):
        return "ARRAY[" + ",".join(_literal(item) for item in value) + "]::varchar[]"
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return "NULL" if value is None else str(value)


async def _generic_plan(dsn: str, sql: str, parameters: list[Any]) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "INSERT INTO application (id, name, metadata, created_at, updated_at)"
            " VALUES ('app_1', 'a', '{}', now(), now())"
        )
        await connection.execute(
            "INSERT INTO endpoint (id, app_id, url, description, disabled, metadata, headers, secret,"
            " created_at, updated_at) VALUES ('ep_1', 'app_1', 'http://x/', '', false, '{}', '', 's', now(), now())"
        )
        await connection.execute(
            "INSERT INTO message (id, app_id, event_type, payload, created_at)"
            " SELECT 'msg_' || lpad(g::text, 8, '0'), 'app_1', 't', '{}', now()"
            f" FROM generate_series(1, {2 * BACKLOG}) g"
        )
        # Every other delivery settled (status 0), the rest pending and due (status 1); the
        # nudged ones (dlv_1, dlv_3) the most recently due, so no fill takes them.
        await connection.execute(
            "INSERT INTO delivery (id, app_id, msg_id, endpoint_id, status, trigger_type, attempt_count,"
            " next_attempt_at, created_at, updated_at)"
            " SELECT 'dlv_' || g, 'app_1', 'msg_' || lpad(g::text, 8, '0'), 'ep_1', g % 2, 0, 0,"
            " now() - interval '1 minute' - g * interval '1 second', now(), now()"
            f" FROM generate_series(1, {2 * BACKLOG}) g"
        )
        await connection.execute("ANALYZE")
        # What a prepared statement runs after its first executions: a plan for any parameters.
        await connection.execute("SET plan_cache_mode = force_generic_plan")
        await connection.execute(f"PREPARE lease AS {sql}")
        arguments = ", ".join(_literal(value) for value in parameters)
        async with connection.transaction():
            rows = await connection.fetch(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE lease({arguments})")
        return "\n".join(row[0] for row in rows)
    finally:
        await connection.close()


@pytest.mark.parametrize("nudged", [["dlv_1", "dlv_3"], []], ids=["nudged-and-fill", "fill-only"])
def test_the_claim_reads_the_due_set_from_the_partial_index_and_its_rows_by_key(
    tmp_path: Path, nudged: list[str]
) -> None:
    with fresh_postgres_database() as database_url:
        settings = make_settings(tmp_path, database_url=database_url)
        upgrade_to_head(settings)
        now = utcnow()
        statement = _lease_statement(
            settings, now, now + timedelta(seconds=60), nudged, TAKEN, [], with_traceparent=False
        )
        compiled = statement.compile(dialect=postgresql.asyncpg.dialect(), compile_kwargs={"render_postcompile": True})
        assert compiled.positiontup is not None
        dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        plan = asyncio.run(_generic_plan(dsn, str(compiled), [compiled.params[k] for k in compiled.positiontup]))

    # The fill scans the partial index (its partitions' copies are named after its column).
    assert "_next_attempt_at_idx on delivery_default" in plan, plan
    assert "status_next_attempt_at" not in plan, plan
    # The leased rows are found by key: no row of the backlog is read and thrown away.
    assert "pkey" in plan, plan
    assert "Rows Removed by Filter" not in plan, plan
    assert f"rows={TAKEN + len(nudged)} " in plan.splitlines()[0], plan
