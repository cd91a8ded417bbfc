"""Bulk expunge: a message's contents blanked, what is still to send canceled, only within
the path's application."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.helpers import MakeApp, MakeEndpoint, SendMessage, expect

APPS = "/api/v1/app"


def listed(client: TestClient, url: str, **params: object) -> list[str]:
    return [item["id"] for item in expect(client.get(url, params=params), 200)["data"]]


def messages(app_id: str) -> str:
    return f"{APPS}/{app_id}/msg"


def test_bulk_expunge_cancels_what_is_still_to_send(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, send: SendMessage
) -> None:
    make_endpoint()  # on a port nothing listens on: the delivery stays pending
    msg_id = send(payload={"card": "4242"})["id"]

    out = expect(client.post(f"{messages(app_id)}/bulk-expunge", json={"ids": [msg_id]}), 200)

    assert out == {"results": {msg_id: "expunged"}}
    assert expect(client.get(f"{messages(app_id)}/{msg_id}"), 200)["payload"] == {}
    [destination] = expect(client.get(f"{messages(app_id)}/{msg_id}/endpoint"), 200)["data"]
    assert (destination["statusText"], destination["nextAttempt"]) == ("canceled", None)


def test_bulk_expunge_of_another_applications_message_is_not_found(
    client: TestClient, app_id: str, make_app: MakeApp, send: SendMessage
) -> None:
    other = make_app()["id"]
    theirs = send(app=other)["id"]

    out = expect(client.post(f"{messages(app_id)}/bulk-expunge", json={"ids": [theirs]}), 200)

    assert out == {"results": {theirs: "not-found"}}
    assert expect(client.get(f"{messages(other)}/{theirs}"), 200)["payload"] == {"n": 1}


def test_bulk_expunge_needs_ids(client: TestClient, app_id: str) -> None:
    assert client.post(f"{messages(app_id)}/bulk-expunge", json={}).status_code == 422
    assert client.post(f"{messages(app_id)}/bulk-expunge", json={"ids": []}).status_code == 422
