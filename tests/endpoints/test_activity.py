"""An endpoint's activity: send-example, stats, its messages; and deleting content (expunge)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from hookpost.delivery.context import DeliveryContext
from hookpost.settings import Settings
from tests.api.helpers import Json, MakeEndpoint, SendMessage, declare_event_types, expect
from tests.support.delivery import deliver_batch, delivery_context
from tests.support.receiver import Receiver

EXAMPLES: Json = {"type": "object", "examples": [{"invoice": 1}, {"invoice": 2}]}


def database(settings: Settings) -> sqlite3.Connection:
    return sqlite3.connect(Path(make_url(settings.database_url).database or ""))


def set_status(settings: Settings, msg_id: str, status: int, **columns: Any) -> None:
    """Put the message's deliveries in a state only a worker would (none runs in memory)."""
    assignments = ", ".join(["status = ?", *(f"{name} = ?" for name in columns)])
    with database(settings) as db:
        db.execute(f"UPDATE delivery SET {assignments} WHERE msg_id = ?", (status, *columns.values(), msg_id))


@pytest.fixture
def invoice_type(client: TestClient) -> str:
    expect(client.put("/api/v1/event-type/invoice.paid", json={"description": "", "schemas": {"1": EXAMPLES}}), 201)
    return "invoice.paid"


def test_send_example_sends_the_example_to_that_endpoint_alone(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, invoice_type: str
) -> None:
    target, other = make_endpoint(), make_endpoint()
    url = f"/api/v1/app/{app_id}/endpoint/{target['id']}/send-example"

    first = expect(client.post(url, json={"eventType": invoice_type}), 200)
    second = expect(client.post(url, json={"eventType": invoice_type, "exampleIndex": 1}), 200)
    custom = expect(client.post(url, json={"eventType": invoice_type, "payload": {"mine": True}}), 200)

    assert (first["eventType"], first["payload"], second["payload"]) == (invoice_type, {"invoice": 1}, {"invoice": 2})
    assert custom["payload"] == {"mine": True}
    stored = expect(client.get(f"/api/v1/app/{app_id}/msg/{first['id']}"), 200)
    assert stored["payload"] == {"invoice": 1}
    destinations = expect(client.get(f"/api/v1/app/{app_id}/msg/{first['id']}/endpoint"), 200)["data"]
    assert [d["id"] for d in destinations] == [target["id"]]
    assert other["id"] not in {d["id"] for d in destinations}


def test_send_example_refusals(client: TestClient, app_id: str, make_endpoint: MakeEndpoint, invoice_type: str) -> None:
    url = f"/api/v1/app/{app_id}/endpoint/{make_endpoint()['id']}/send-example"
    declare_event_types(client, "no.schema")

    out_of_range = client.post(url, json={"eventType": invoice_type, "exampleIndex": 2})
    no_example = client.post(url, json={"eventType": "no.schema"})
    unknown = client.post(url, json={"eventType": "never.declared"})

    assert out_of_range.status_code == 422
    assert out_of_range.json()["detail"][0]["loc"] == ["body", "exampleIndex"]
    assert no_example.status_code == 422
    assert "no examples" in no_example.json()["detail"][0]["msg"]
    assert unknown.status_code == 404


def test_stats_count_the_endpoint_deliveries_by_state(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, send: SendMessage, settings: Settings
) -> None:
    endpoint = make_endpoint()
    ids = [send()["id"] for _ in range(5)]
    set_status(settings, ids[2], 1, lease_until="2999-01-01 00:00:00.000000")  # being sent right now
    url = f"/api/v1/app/{app_id}/endpoint/{endpoint['id']}/stats"

    stats = expect(client.get(url), 200)
    none_yet = expect(client.get(url, params={"until": "2000-01-01T00:00:00Z"}), 200)

    # Settled ones come from the rollup, kept by real deliveries: tests/statistics/test_api.py.
    assert stats == {"success": 0, "pending": 4, "sending": 1, "fail": 0, "canceled": 0}
    assert none_yet == {"success": 0, "pending": 0, "sending": 0, "fail": 0, "canceled": 0}


def test_the_endpoint_message_list_shows_each_message_with_its_status_there(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, send: SendMessage, settings: Settings
) -> None:
    endpoint = make_endpoint(eventTypes=["a", "b"])
    a = send("a", {"n": 1}, channels=["eu"], tags=["t1"])["id"]
    b = send("b", {"n": 2})["id"]
    send("c")  # not for this endpoint
    set_status(settings, b, 2)
    url = f"/api/v1/app/{app_id}/endpoint/{endpoint['id']}/msg"

    def listed(**params: Any) -> list[str]:
        return [m["id"] for m in expect(client.get(url, params=params), 200)["data"]]

    page = expect(client.get(url), 200)
    assert [m["id"] for m in page["data"]] == [b, a]
    first = page["data"][1]
    assert (first["eventType"], first["payload"], first["status"], first["statusText"]) == ("a", {"n": 1}, 1, "pending")
    assert first["nextAttempt"] is not None
    assert listed(status=2) == [b]
    assert listed(event_types="a") == [a]
    assert listed(channel="eu") == [a]
    assert listed(channel="e") == []
    assert listed(tag="t1") == [a]
    assert listed(tag="t_") == [], "a LIKE wildcard in a filter matches only itself"
    assert expect(client.get(url, params={"with_content": "false"}), 200)["data"][0]["payload"] == {}
    one = expect(client.get(url, params={"limit": 1}), 200)
    assert (len(one["data"]), one["done"]) == (1, False)
    assert listed(limit=1, iterator=one["iterator"]) == [a]


def test_a_delivery_in_flight_is_sending_unless_statuses_are_not_expanded(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, send: SendMessage, settings: Settings
) -> None:
    endpoint = make_endpoint()
    msg_id = send()["id"]
    set_status(settings, msg_id, 1, lease_until="2999-01-01 00:00:00.000000")
    url = f"/api/v1/app/{app_id}/endpoint/{endpoint['id']}/msg"

    expanded = expect(client.get(url), 200)["data"][0]
    plain = expect(client.get(url, params={"expanded_statuses": "false"}), 200)["data"][0]

    assert (expanded["status"], expanded["statusText"]) == (3, "sending")
    assert (plain["status"], plain["statusText"]) == (1, "pending")
    assert [m["id"] for m in expect(client.get(url, params={"status": 3}), 200)["data"]] == [msg_id]
    assert expect(client.get(url, params={"status": 1}), 200)["data"] == []


def test_expunging_a_payload_cancels_what_is_still_owed(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, send: SendMessage
) -> None:
    endpoint = make_endpoint()
    msg_id = send(payload={"card": "4242"})["id"]

    assert client.delete(f"/api/v1/app/{app_id}/msg/{msg_id}/content").status_code == 204

    assert expect(client.get(f"/api/v1/app/{app_id}/msg/{msg_id}"), 200)["payload"] == {}
    [destination] = expect(client.get(f"/api/v1/app/{app_id}/msg/{msg_id}/endpoint"), 200)["data"]
    assert (destination["statusText"], destination["nextAttempt"]) == ("canceled", None)
    resend = client.post(f"/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint['id']}/resend")
    assert resend.status_code == 409
    assert "deleted" in resend.json()["detail"]


def test_expunging_an_unknown_attempt_is_404(client: TestClient, app_id: str, send: SendMessage) -> None:
    msg_id = send()["id"]

    response = client.delete(f"/api/v1/app/{app_id}/msg/{msg_id}/attempt/atmpt_nope/content")

    assert response.status_code == 404


@pytest.fixture
async def delivery(settings: Settings) -> AsyncIterator[DeliveryContext]:
    """What a Celery worker sends with, in this process, on the test's database."""
    async with delivery_context(settings) as context:
        yield context


@pytest.mark.parametrize("how", ["one", "bulk"])
async def test_an_attempt_in_flight_when_the_payload_is_expunged_leaves_the_delivery_canceled(
    client: TestClient, app_id: str, send: SendMessage, receiver: Receiver, delivery: DeliveryContext, how: str
) -> None:
    receiver.script["/slow"] = [(500, {})]  # a failure: its delivery would be retried...
    receiver.delays["/slow"] = 2.0  # ...and it is still answering when the payload goes
    endpoint = expect(client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": receiver.url + "/slow"}), 201)
    msg_id = send(payload={"card": "4242"})["id"]
    [(delivery_id,)] = database(delivery.settings).execute("SELECT id FROM delivery WHERE msg_id = ?", (msg_id,))

    sending = asyncio.create_task(deliver_batch(delivery, [delivery_id], fill=False))
    await asyncio.to_thread(receiver.wait_for, lambda got: len(got) == 1)
    if how == "one":
        assert client.delete(f"/api/v1/app/{app_id}/msg/{msg_id}/content").status_code == 204
    else:
        expect(client.post(f"/api/v1/app/{app_id}/msg/bulk-expunge", json={"ids": [msg_id]}), 200)
    [sent] = await sending

    assert sent.result.status_code == 500, "the attempt is on record"
    [destination] = expect(client.get(f"/api/v1/app/{app_id}/msg/{msg_id}/endpoint"), 200)["data"]
    assert (destination["id"], destination["statusText"], destination["nextAttempt"]) == (
        endpoint["id"],
        "canceled",
        None,
    ), "no retry of an empty body"
    assert await deliver_batch(delivery, [delivery_id], fill=False) == []
    assert len(receiver.received("/slow")) == 1
