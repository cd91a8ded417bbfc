"""Messages: /api/v1/app/{app_id}/msg."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from hookpost.settings import Settings
from tests.api.helpers import MakeApp, MakeEndpoint, SendMessage, expect, unique, walk

MIB = 1024 * 1024


def messages(app_id: str) -> str:
    return f"/api/v1/app/{app_id}/msg"


def destinations(client: TestClient, app_id: str, msg_id: str) -> list[str]:
    """The endpoints the message is owed to."""
    page = expect(client.get(f"{messages(app_id)}/{msg_id}/endpoint"), 200)
    return [endpoint["id"] for endpoint in page["data"]]


def listed(client: TestClient, app_id: str, **params: object) -> list[str]:
    return [msg["id"] for msg in expect(client.get(messages(app_id), params=params), 200)["data"]]


def test_create_is_accepted(client: TestClient, app_id: str) -> None:
    body = {"eventType": "user.created", "payload": {"id": 7, "nested": {"ok": True}}, "tags": ["t1"]}

    response = client.post(messages(app_id), json=body)

    assert response.status_code == 202
    message = response.json()
    assert message["id"].startswith("msg_")
    assert (message["eventType"], message["payload"], message["tags"]) == ("user.created", body["payload"], ["t1"])
    assert message["eventId"] is None
    assert datetime.fromisoformat(message["timestamp"]).utcoffset() is not None


def test_create_queues_one_delivery_per_endpoint(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    made = {make_endpoint()["id"] for _ in range(2)}

    message = expect(client.post(messages(app_id), json={"eventType": "e", "payload": {}}), 202)

    assert set(destinations(client, app_id, message["id"])) == made


def test_create_without_content_in_the_answer(client: TestClient, app_id: str) -> None:
    response = client.post(
        messages(app_id), params={"with_content": "false"}, json={"eventType": "e", "payload": {"big": "x"}}
    )

    assert response.status_code == 202
    assert response.json()["payload"] == {}
    assert expect(client.get(f"{messages(app_id)}/{response.json()['id']}"), 200)["payload"] == {"big": "x"}


def test_idempotency_key_repeat_returns_the_same_message(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint
) -> None:
    make_endpoint()
    body = {"eventType": "order.paid", "payload": {"order": 1}}
    key = unique("idem")

    first = client.post(messages(app_id), json=body, headers={"idempotency-key": key})
    again = client.post(messages(app_id), json=body, headers={"idempotency-key": key})

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["id"] == first.json()["id"]
    assert listed(client, app_id) == [first.json()["id"]]
    assert len(destinations(client, app_id, first.json()["id"])) == 1
    # A different key is a different message.
    other = client.post(messages(app_id), json=body, headers={"idempotency-key": unique("idem")})
    assert other.json()["id"] != first.json()["id"]


def test_idempotency_keys_are_per_application(client: TestClient, app_id: str, make_app: MakeApp) -> None:
    other_app = make_app()["id"]
    key = unique("idem")
    body = {"eventType": "e", "payload": {}}

    mine = expect(client.post(messages(app_id), json=body, headers={"idempotency-key": key}), 202)
    theirs = expect(client.post(messages(other_app), json=body, headers={"idempotency-key": key}), 202)

    assert mine["id"] != theirs["id"]


def _stored_keys(settings: Settings) -> int:
    async def count() -> int:
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.connect() as connection:
                return int((await connection.execute(text("SELECT count(*) FROM idempotent_response"))).scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(count())


def test_only_authenticated_api_requests_store_idempotency_keys(
    client: TestClient, settings: Settings, app_id: str
) -> None:
    """A key sent by someone the token check did not let in stores nothing (it was kept 12 h)."""
    unknown = {"authorization": "Bearer not-a-token"}
    for n, (path, headers) in enumerate(
        [
            (messages(app_id), unknown),  # a wrong token on the API
            ("/api/v1/health", unknown),  # a public API path
            ("/console/sign-in", unknown),  # outside the API
            ("/portal/nowhere", unknown),
            ("/nowhere", unknown),
        ]
    ):
        answer = client.post(path, json={"n": n}, headers={**headers, "idempotency-key": f"spam-{n}"})
        assert answer.status_code < 500, (path, answer.text)

    assert _stored_keys(settings) == 0
    expect(client.post(messages(app_id), json={"eventType": "e", "payload": {}}, headers={"idempotency-key": "k"}), 202)
    assert _stored_keys(settings) == 1


def test_event_id_repeat_returns_the_same_message(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, send: SendMessage
) -> None:
    make_endpoint()
    event_id = unique("evt")

    first = send(eventId=event_id)
    again = send(eventId=event_id)

    assert again["id"] == first["id"]
    assert first["eventId"] == event_id
    assert listed(client, app_id) == [first["id"]]
    assert len(destinations(client, app_id, first["id"])) == 1


def test_get_by_id_and_by_event_id(client: TestClient, app_id: str, send: SendMessage) -> None:
    message = send(eventId=unique("evt"), payload={"k": "v"})

    assert expect(client.get(f"{messages(app_id)}/{message['id']}"), 200) == message
    assert expect(client.get(f"{messages(app_id)}/{message['eventId']}"), 200) == message
    without = expect(client.get(f"{messages(app_id)}/{message['id']}", params={"with_content": "false"}), 200)
    assert without["payload"] == {}


def test_get_unknown_or_foreign_message_is_404(client: TestClient, make_app: MakeApp, send: SendMessage) -> None:
    message = send()
    other_app = make_app()["id"]

    for url in (f"{messages(other_app)}/{message['id']}", f"{messages(other_app)}/msg_2abcdefghijklmnopqrstu"):
        response = client.get(url)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


def test_message_to_an_unknown_uid_creates_the_application(client: TestClient) -> None:
    uid = unique("auto")
    body = {"eventType": "e", "payload": {}, "application": {"name": "Auto made", "metadata": {"m": "1"}}}

    message = expect(client.post(messages(uid), json=body), 202)

    app = expect(client.get(f"/api/v1/app/{uid}"), 200)
    assert (app["uid"], app["name"], app["metadata"]) == (uid, "Auto made", {"m": "1"})
    assert listed(client, uid) == [message["id"]]
    # Once it exists, `application` is ignored and no second application appears.
    expect(client.post(messages(uid), json=body | {"application": {"name": "Ignored"}}), 202)
    apps = expect(client.get("/api/v1/app"), 200)["data"]
    assert [a["id"] for a in apps] == [app["id"]]
    assert apps[0]["name"] == "Auto made"


def test_retried_message_to_an_unknown_app_id_makes_one_application(client: TestClient) -> None:
    """A client retrying the same request (same idempotency key) must not multiply
    applications or messages, whether or not an ``app_`` id it names can be created."""
    path = messages("app_2abcdefghijklmnopqrstu")
    body = {"eventType": "e", "payload": {}, "application": {"name": "Made by message"}}
    key = unique("idem")

    answers = [client.post(path, json=body, headers={"idempotency-key": key}) for _ in range(2)]

    apps = expect(client.get("/api/v1/app"), 200)["data"]
    assert len(apps) <= 1, [app["id"] for app in apps]
    if answers[0].status_code == 202:
        assert answers[1].status_code == 202
        assert answers[1].json()["id"] == answers[0].json()["id"]
    else:
        assert [answer.status_code for answer in answers] == [404, 404]


def test_message_to_an_unknown_application_without_application_is_404(client: TestClient) -> None:
    response = client.post(messages(unique("nope")), json={"eventType": "e", "payload": {}})

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert expect(client.get("/api/v1/app"), 200)["data"] == []


def test_list_newest_first_with_pages(client: TestClient, app_id: str, send: SendMessage) -> None:
    sent = [send()["id"] for _ in range(3)]

    pages = walk(client, messages(app_id), limit=2)

    assert [msg["id"] for page in pages for msg in page["data"]] == list(reversed(sent))


def test_list_filters_by_event_type(client: TestClient, app_id: str, send: SendMessage) -> None:
    a1, b, a2 = send("type.a")["id"], send("type.b")["id"], send("type.a")["id"]
    send("type.c")

    assert listed(client, app_id, event_types="type.a") == [a2, a1]
    # One comma-separated value (as the Svix clients send it) or the parameter repeated.
    assert set(listed(client, app_id, event_types="type.a,type.b")) == {a1, a2, b}
    assert set(listed(client, app_id, event_types=["type.a", "type.b"])) == {a1, a2, b}
    assert listed(client, app_id, event_types="type.none") == []


def test_list_before_and_after(client: TestClient, app_id: str, send: SendMessage) -> None:
    first, middle, last = send(), send(), send()

    assert listed(client, app_id, before=middle["timestamp"]) == [first["id"]]
    assert listed(client, app_id, after=middle["timestamp"]) == [last["id"]]
    assert listed(client, app_id, after=first["timestamp"], before=last["timestamp"]) == [middle["id"]]


def test_list_before_and_after_honour_the_utc_offset(client: TestClient, app_id: str, send: SendMessage) -> None:
    """The same instant written with another UTC offset filters the same way."""
    message = send()
    sent_at = datetime.fromisoformat(message["timestamp"])
    elsewhere = timezone(timedelta(hours=5))
    just_before = (sent_at - timedelta(seconds=1)).astimezone(elsewhere).isoformat()
    just_after = (sent_at + timedelta(seconds=1)).astimezone(elsewhere).isoformat()

    assert listed(client, app_id, after=just_before) == [message["id"]]
    assert listed(client, app_id, before=just_after) == [message["id"]]
    assert listed(client, app_id, before=just_before) == []
    assert listed(client, app_id, after=just_after) == []


def test_list_rejects_a_bad_timestamp(client: TestClient, app_id: str) -> None:
    response = client.get(messages(app_id), params={"before": "yesterday"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "before"]


def test_list_of_an_unknown_application_is_404(client: TestClient) -> None:
    assert client.get(messages("nope")).status_code == 404


def test_body_over_one_mib_is_413(client: TestClient, app_id: str) -> None:
    body = {"eventType": "e", "payload": {"blob": "x" * MIB}}

    response = client.post(messages(app_id), json=body)

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert listed(client, app_id) == []


@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "with-idempotency-key"])
def test_chunked_body_over_one_mib_is_413(client: TestClient, app_id: str, keyed: bool) -> None:
    """No content-length to go by: the limit is counted as the body arrives (with a key, by
    the idempotency check that reads the body first)."""
    chunk = b"x" * (64 * 1024)

    def body() -> Iterator[bytes]:
        yield b'{"eventType": "e", "payload": {"blob": "'
        for _ in range(17):
            yield chunk
        yield b'"}}'

    headers = {"content-type": "application/json"} | ({"idempotency-key": "big-1"} if keyed else {})
    response = client.post(messages(app_id), content=body(), headers=headers)

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert listed(client, app_id) == []


def test_body_just_under_the_limit_is_accepted(client: TestClient, app_id: str) -> None:
    envelope = len(b'{"eventType":"e","payload":{"blob":""}}')
    body = '{"eventType":"e","payload":{"blob":"' + "x" * (MIB - envelope) + '"}}'
    assert len(body) == MIB

    response = client.post(messages(app_id), content=body, headers={"content-type": "application/json"})

    assert response.status_code == 202


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"payload": {}}, "eventType"),
        ({"eventType": "e"}, "payload"),
        ({"eventType": "e", "payload": [1, 2]}, "payload"),
        ({"eventType": "e", "payload": "text"}, "payload"),
        ({"eventType": "e", "payload": None}, "payload"),
        ({"eventType": "has space", "payload": {}}, "eventType"),
        ({"eventType": "e", "payload": {}, "eventId": "bad id"}, "eventId"),
        ({"eventType": "e", "payload": {}, "tags": ["a", "b", "c", "d", "e", "f"]}, "tags"),
    ],
)
def test_create_validates(client: TestClient, app_id: str, body: dict[str, object], field: str) -> None:
    response = client.post(messages(app_id), json=body)

    assert response.status_code == 422
    assert response.json()["code"] == "validation"
    assert response.json()["detail"][0]["loc"][:2] == ["body", field]
    assert listed(client, app_id) == []
