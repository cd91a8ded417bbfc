"""Polling endpoints through the API: the application's messages in the order accepted,
filtered as an endpoint's, a retried poll reading the same messages again, named consumers
whose position the server keeps, and nothing of another application's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.ext.asyncio import create_async_engine

from hookpost.app import create_app
from hookpost.kit.ids import first_id_at
from hookpost.settings import Settings
from hookpost.storage.models import Message
from tests.api.helpers import Json, MakeApp, SendMessage, declare_event_types, expect
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import fresh_postgres_database, upgrade_to_head
from tests.support.eventually import eventually

PORTAL = "/api/v1/auth/app-portal-access"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A migrated SQLite database, and messages handed to pollers as soon as they are committed
    (the API's writes are committed before it answers, so a test need not wait them out)."""
    settings = make_settings(tmp_path, poller_settle=0.0)
    upgrade_to_head(settings)
    return settings


def poller(client: TestClient, app_id: str, **fields: object) -> str:
    made = expect(client.post(f"/api/v1/app/{app_id}/destination", json={"type": "pollingEndpoint", **fields}), 201)
    return str(made["id"])


def poll(client: TestClient, app_id: str, sink: str, suffix: str = "", **params: object) -> Json:
    return expect(client.get(f"/api/v1/app/{app_id}/poller/{sink}{suffix}", params=params), 200)


def ids(page: Json) -> list[str]:
    return [message["id"] for message in page["data"]]


def test_messages_come_in_the_order_accepted_a_page_at_a_time(
    client: TestClient, app_id: str, send: SendMessage
) -> None:
    sink = poller(client, app_id)
    sent = [send(payload={"n": n})["id"] for n in range(5)]

    first = poll(client, app_id, sink, limit=3)
    assert (ids(first), first["done"]) == (sent[:3], False)
    assert first["data"][0]["payload"] == {"n": 0}
    second = poll(client, app_id, sink, limit=3, iterator=first["iterator"])
    assert (ids(second), second["done"]) == (sent[3:], True)

    # A retried poll (the answer lost on the way): the same iterator reads the same messages again.
    assert ids(poll(client, app_id, sink, limit=3, iterator=first["iterator"])) == sent[3:]
    # Nothing new: an empty page, and an iterator to come back with.
    idle = poll(client, app_id, sink, iterator=second["iterator"])
    assert (ids(idle), idle["done"]) == ([], True)
    later = send(payload={"n": 5})["id"]
    assert ids(poll(client, app_id, sink, iterator=idle["iterator"])) == [later]


def test_a_poller_starts_at_its_creation_unless_asked_for_earlier(
    client: TestClient, app_id: str, send: SendMessage
) -> None:
    before = send()["id"]
    sink = poller(client, app_id)
    after = send()["id"]
    assert ids(poll(client, app_id, sink)) == [after]
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    assert ids(poll(client, app_id, sink, after=since)) == [before, after]


def test_filters_apply_as_for_endpoints(client: TestClient, app_id: str, send: SendMessage) -> None:
    declare_event_types(client, "order.paid", "order.shipped")
    sink = poller(client, app_id, eventTypes=["order.paid", "order.shipped"], channels=["eu", "us"])
    wanted = [
        send("order.paid", channels=["eu"])["id"],
        send("order.shipped", channels=["us", "x"])["id"],
    ]
    send("order.paid")  # no channel
    send("order.paid", channels=["asia"])
    send("user.created", channels=["eu"])  # another event type
    assert ids(poll(client, app_id, sink)) == wanted
    # And the poll's own filters narrow further.
    assert ids(poll(client, app_id, sink, event_type="order.shipped")) == wanted[1:]
    assert ids(poll(client, app_id, sink, channel="eu")) == wanted[:1]


def test_a_named_consumer_moves_on_and_can_read_again_and_seek(
    client: TestClient, app_id: str, send: SendMessage
) -> None:
    sink = poller(client, app_id)
    sent = [send(payload={"n": n})["id"] for n in range(4)]
    consumer = "/consumer/worker-1"

    first = poll(client, app_id, sink, consumer, limit=2)
    assert ids(first) == sent[:2]
    assert ids(poll(client, app_id, sink, consumer, limit=2)) == sent[2:]  # the server kept its place
    assert ids(poll(client, app_id, sink, consumer)) == []
    # An answer lost: passing back the iterator of the last one processed reads it again.
    assert ids(poll(client, app_id, sink, consumer, limit=2, iterator=first["iterator"])) == sent[2:]
    # Another consumer has its own position.
    assert ids(poll(client, app_id, sink, "/consumer/worker-2")) == sent

    seek = client.post(
        f"/api/v1/app/{app_id}/poller/{sink}{consumer}/seek",
        json={"after": (datetime.now(UTC) - timedelta(minutes=5)).isoformat()},
    )
    assert seek.status_code == 200, seek.text
    assert ids(poll(client, app_id, sink, consumer)) == sent
    assert ids(poll(client, app_id, sink, consumer, iterator=seek.json()["iterator"])) == sent


def test_a_late_commit_is_not_skipped(client: TestClient, app_id: str, settings: Settings) -> None:
    """A message whose write took a while (its id older than the messages around it) is still
    handed out: a poller never moves past messages younger than ``poller_settle``."""
    sink = poller(client, app_id)
    settings.poller_settle = 1.0  # the app's own settings object
    long_ago = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    start = poll(client, app_id, sink, after=long_ago)["iterator"]
    late_id = first_id_at("msg", int((datetime.now(UTC) - timedelta(milliseconds=500)).timestamp() * 1000))
    late_id = late_id[:-1] + "1"
    # Committed now, with an id from half a second ago: what a slow write leaves behind.
    asyncio.run(_insert_message(settings, late_id, app_id))
    seen: list[str] = []
    position = start

    def polled_it() -> bool:
        nonlocal position
        page = poll(client, app_id, sink, iterator=position)
        seen.extend(ids(page))
        position = page["iterator"]
        return late_id in seen

    eventually(polled_it, "the late message handed out", timeout=5.0)


async def _insert_message(settings: Settings, msg_id: str, app_id: str) -> None:
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                Message.__table__.insert().values(
                    id=msg_id, app_id=app_id, event_type="late", payload="{}", created_at=datetime.now(UTC)
                )
            )
    finally:
        await engine.dispose()


def test_refusals(client: TestClient, app_id: str) -> None:
    fifo = expect(
        client.post(
            f"/api/v1/app/{app_id}/destination",
            json={"type": "fifoEndpoint", "config": {"url": "https://127.0.0.1:9/"}},
        ),
        201,
    )
    assert client.get(f"/api/v1/app/{app_id}/poller/{fifo['id']}").status_code == 404
    assert client.get(f"/api/v1/app/{app_id}/poller/dest_nothing").status_code == 404
    disabled = poller(client, app_id, status="disabled")
    assert client.get(f"/api/v1/app/{app_id}/poller/{disabled}").status_code == 409
    sink = poller(client, app_id)
    bad = client.get(f"/api/v1/app/{app_id}/poller/{sink}", params={"iterator": "not-one"})
    assert bad.status_code == 422
    assert "iterator" in bad.text


def test_a_scoped_token_cannot_read_another_applications_poller(
    client: TestClient, app_id: str, make_app: MakeApp, send: SendMessage
) -> None:
    other = make_app()["id"]
    theirs = poller(client, other)
    send(app=other, payload={"secret": "theirs"})
    mine = poller(client, app_id)
    token = expect(client.post(f"{PORTAL}/{app_id}", json={}), 200)["token"]
    as_token = {"authorization": f"Bearer {token}"}

    base = f"/api/v1/app/{other}/poller/{theirs}"
    for method, path in [("GET", base), ("GET", f"{base}/consumer/c"), ("POST", f"{base}/consumer/c/seek")]:
        response = client.request(method, path, headers=as_token, json={"after": "2020-01-01T00:00:00Z"})
        assert response.status_code == 403, (method, path, response.text)
    # Their poller's id under one's own application: not found, and none of their messages.
    assert client.get(f"/api/v1/app/{app_id}/poller/{theirs}", headers=as_token).status_code == 404
    own = client.get(f"/api/v1/app/{app_id}/poller/{mine}", headers=as_token, params={"after": "2020-01-01T00:00:00Z"})
    assert own.status_code == 200
    assert own.json()["data"] == []


@pytest.mark.postgres
def test_polling_on_postgresql(tmp_path: Path) -> None:
    """The same reads on PostgreSQL, where the horizon also waits for the oldest open write."""
    with fresh_postgres_database() as database_url:
        settings = make_settings(tmp_path, database_url=database_url, poller_settle=0.0)
        upgrade_to_head(settings)
        headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        with TestClient(create_app(settings), headers=headers) as client:
            app_id = expect(client.post("/api/v1/app", json={"name": "pg"}), 201)["id"]
            sink = poller(client, app_id)
            sent = [
                expect(client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "a", "payload": {}}), 202)["id"]
                for _ in range(3)
            ]
            assert ids(poll(client, app_id, sink)) == sent
            assert ids(poll(client, app_id, sink, "/consumer/one", limit=2)) == sent[:2]
            assert ids(poll(client, app_id, sink, "/consumer/one")) == sent[2:]
