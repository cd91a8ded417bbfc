"""postgres destinations delivered to a database on the local PostgreSQL: each accepted message
a row, inserted in order with its id, event type, channels and payload; a missing table fails
the batch with a clear reason, and it is retried until the table is there; a repeated batch
adds no row twice (msg_id unique)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import asyncpg  # type: ignore[import-untyped]
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from hookpost.delivery.context import DeliveryContext
from tests.api.helpers import expect
from tests.destinations.delivered import attempts, create, delivered_count, run_until, send, without_loopback
from tests.destinations.test_fifo import context, settings
from tests.support.databases import fresh_postgres_database

__all__ = ["context", "settings"]

TABLE = """CREATE TABLE {name} (
    msg_id text PRIMARY KEY, event_type text NOT NULL, channels jsonb, payload jsonb NOT NULL,
    created_at timestamptz NOT NULL, inserted serial
)"""

pytestmark = pytest.mark.postgres


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh database; its URL as a destination names it (postgres://user@host:port/name)."""
    with fresh_postgres_database("queues") as url:
        parsed = make_url(url)
        yield f"postgres://{parsed.username}@{parsed.host}:{parsed.port or 5432}/{parsed.database}"


async def rows(database: str, table: str = "events") -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database)
    try:
        return await connection.fetch(f"SELECT * FROM {table} ORDER BY inserted")
    finally:
        await connection.close()


async def execute(database: str, statement: str) -> None:
    connection = await asyncpg.connect(database)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def test_messages_are_inserted_in_order_as_rows(
    client: TestClient, app_id: str, context: DeliveryContext, database: str
) -> None:
    await execute(database, TABLE.format(name="public.events"))
    other_app = expect(client.post("/api/v1/app", json={"name": "other"}), 201)["id"]
    destination = create(client, app_id, "postgres", {"url": database, "tableName": "public.events"})
    send(client, other_app, 2)
    sent = send(client, app_id, 7)

    await run_until(context, lambda: delivered_count(client, app_id, destination["id"]) >= 7)

    inserted = await rows(database)
    assert [row["msg_id"] for row in inserted] == sent
    assert [json.loads(row["payload"]) for row in inserted] == [{"n": n} for n in range(7)]
    assert {row["event_type"] for row in inserted} == {"order.paid"}
    assert all(row["created_at"] is not None for row in inserted)
    assert [a["messageCount"] for a in attempts(client, app_id, destination["id"])] == [3, 3, 1]


async def test_a_missing_table_fails_and_the_batch_is_retried_once_it_exists(
    client: TestClient, app_id: str, context: DeliveryContext, database: str
) -> None:
    destination = create(client, app_id, "postgres", {"url": database, "tableName": "events"}, batchSize=5)
    path = f"/api/v1/app/{app_id}/destination/{destination['id']}"
    sent = send(client, app_id, 2)

    await run_until(context, lambda: len(attempts(client, app_id, destination["id"])) >= 1)
    failure = attempts(client, app_id, destination["id"])[0]
    assert failure["status"] == 2
    assert failure["error"].startswith("the table is not as Hookpost needs it")
    assert "events" in failure["error"]

    await execute(database, TABLE.format(name="events"))
    # A row already there (as after a batch that went in but whose success was not recorded).
    await execute(database, f"INSERT INTO events VALUES ('{sent[0]}', 'x', null, '{{}}', now())")
    if expect(client.get(path), 200)["status"] == "disabled":  # the short test schedule may be spent already
        expect(client.patch(path, json={"type": "postgres", "status": "enabled"}), 200)
    await run_until(context, lambda: delivered_count(client, app_id, destination["id"]) >= 2)

    assert [row["msg_id"] for row in await rows(database)] == sent  # the repeat added nothing twice
    assert expect(client.get(path), 200)["failureReason"] is None


async def test_a_wrong_password_is_a_clear_failure_and_never_shown(
    client: TestClient, app_id: str, context: DeliveryContext, database: str
) -> None:
    # A role that needs a password (the local server trusts loopback, so a role with no login right stands in).
    await execute(database, TABLE.format(name="events"))
    role = database.rsplit("/", 1)[1] + "_nologin"
    await execute(database, f'CREATE ROLE "{role}" NOLOGIN')
    try:
        url = database.replace("postgres@", f"{role}@")
        destination = create(client, app_id, "postgres", {"url": url, "password": "pw-secret-9", "tableName": "events"})
        send(client, app_id, 1)

        await run_until(context, lambda: len(attempts(client, app_id, destination["id"])) >= 1)

        made = attempts(client, app_id, destination["id"])
        assert made[0]["status"] == 2
        assert made[0]["error"].startswith("authentication failed: ")
        assert "pw-secret-9" not in json.dumps(made)
    finally:
        await execute(database, f'DROP ROLE "{role}"')


async def test_the_address_check_applies_to_the_database(
    client: TestClient, app_id: str, context: DeliveryContext, database: str
) -> None:
    await execute(database, TABLE.format(name="events"))
    destination = create(client, app_id, "postgres", {"url": database, "tableName": "events"})
    send(client, app_id, 1)

    await run_until(without_loopback(context), lambda: len(attempts(client, app_id, destination["id"])) >= 1)

    error = attempts(client, app_id, destination["id"])[0]["error"]
    assert error.startswith("destination refused: "), error
    assert await rows(database) == []
