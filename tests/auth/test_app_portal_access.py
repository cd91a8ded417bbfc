"""App portal access tokens: minted by the admin, scoped to one application, revocable."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from starlette.websockets import WebSocketDisconnect

from hookpost.applications.service import OPERATIONAL_APP_ID
from hookpost.settings import Settings
from tests.api.helpers import Json, MakeApp, MakeEndpoint, expect, unique, without_auth

PORTAL = "/api/v1/auth/app-portal-access"
OPERATIONAL = "/api/v1/operational-webhook/endpoint"


def mint(client: TestClient, app_ref: str, **fields: Any) -> Json:
    return expect(client.post(f"{PORTAL}/{app_ref}", json=fields), 200)


def as_token(client: TestClient, token: str, method: str, url: str, **kwargs: Any) -> int:
    """The status of the request made with ``token`` instead of the admin token."""
    response = client.request(method, url, headers={"authorization": f"Bearer {token}"}, **kwargs)
    return response.status_code


def test_the_link_carries_the_token_in_its_fragment(client: TestClient, app_id: str) -> None:
    access = mint(client, app_id)

    assert access["token"].startswith("hp_app_")
    before, _, after = access["url"].partition("#")
    assert after == f"key={access['token']}"
    assert access["token"] not in before, "the part a browser sends must not carry the token"
    page = client.get(before.removeprefix("http://testserver"))
    assert page.status_code == 200
    assert "Access key" in page.text  # the portal, which trades the token for a session
    assert page.headers["referrer-policy"] == "no-referrer"


def test_a_token_works_on_its_own_application_only(
    client: TestClient, make_app: MakeApp, make_endpoint: MakeEndpoint
) -> None:
    mine = make_app(uid=unique("mine"))
    other = make_app()
    token = mint(client, mine["id"])["token"]
    endpoint = make_endpoint(app=mine["id"])

    own = [
        ("GET", f"/api/v1/app/{mine['id']}"),
        ("GET", f"/api/v1/app/{mine['uid']}/endpoint"),
        ("GET", f"/api/v1/app/{mine['id']}/endpoint/{endpoint['id']}/secret"),
        ("GET", f"/api/v1/app/{mine['id']}/msg"),
        ("GET", "/api/v1/event-type"),
    ]
    for method, url in own:
        assert as_token(client, token, method, url) == 200, url

    refused = [
        ("GET", f"/api/v1/app/{other['id']}"),
        ("GET", f"/api/v1/app/{other['id']}/endpoint"),
        ("POST", f"/api/v1/app/{other['id']}/msg", {"eventType": "a", "payload": {}}),
        ("GET", "/api/v1/app"),
        ("POST", "/api/v1/app", {"name": "new"}),
        ("PATCH", f"/api/v1/app/{mine['id']}", {"name": "renamed"}),
        ("DELETE", f"/api/v1/app/{mine['id']}"),
        ("POST", f"{PORTAL}/{mine['id']}", {}),
        ("POST", "/api/v1/event-type", {"name": "x", "description": ""}),
        ("GET", "/api/v1/background-task/qtask_x"),
    ]
    for method, url, *body in refused:
        response = client.request(
            method, url, headers={"authorization": f"Bearer {token}"}, json=body[0] if body else None
        )
        assert response.status_code == 403, (method, url, response.text)
        assert response.json()["code"] == "forbidden"
    assert expect(client.get(f"/api/v1/app/{mine['id']}"), 200)["name"] == mine["name"]


def test_a_read_only_token_cannot_write_nor_read_secrets(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint()
    token = mint(client, app_id, readOnly=True)["token"]
    base = f"/api/v1/app/{app_id}"

    assert as_token(client, token, "GET", f"{base}/endpoint/{endpoint['id']}") == 200
    assert as_token(client, token, "GET", f"{base}/endpoint/{endpoint['id']}/secret") == 403
    assert as_token(client, token, "POST", f"{base}/msg", json={"eventType": "a", "payload": {}}) == 403
    assert as_token(client, token, "DELETE", f"{base}/endpoint/{endpoint['id']}") == 403
    assert expect(client.get(f"{base}/msg"), 200)["data"] == []


def test_logout_revokes_the_calling_token(client: TestClient, app_id: str) -> None:
    token = mint(client, app_id)["token"]
    kept = mint(client, app_id)["token"]

    assert as_token(client, token, "POST", "/api/v1/auth/logout") == 204

    assert as_token(client, token, "GET", f"/api/v1/app/{app_id}") == 401
    assert as_token(client, kept, "GET", f"/api/v1/app/{app_id}") == 200
    admin = client.post("/api/v1/auth/logout")
    assert admin.status_code == 400
    assert "HOOKPOST_ADMIN_TOKEN" in admin.json()["detail"]


def _database(settings: Settings) -> Path:
    return Path(make_url(settings.database_url).database or "")


def test_an_expired_token_is_refused(client: TestClient, app_id: str, settings: Settings) -> None:
    token = mint(client, app_id, expiry=3600)["token"]
    with sqlite3.connect(_database(settings)) as database:
        database.execute("UPDATE access_token SET expires_at = '2000-01-01 00:00:00.000000'")

    assert as_token(client, token, "GET", f"/api/v1/app/{app_id}") == 401


def test_only_the_hash_is_stored(client: TestClient, app_id: str, settings: Settings) -> None:
    token = mint(client, app_id)["token"]

    with sqlite3.connect(_database(settings)) as database:
        [(stored,)] = database.execute("SELECT token_hash FROM access_token").fetchall()
    assert stored != token
    assert token.encode() not in _database(settings).read_bytes()


def test_the_token_is_never_logged(client: TestClient, app_id: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = mint(client, app_id)["token"]

    as_token(client, token, "GET", f"/api/v1/app/{app_id}")
    as_token(client, token, "GET", "/api/v1/app")
    as_token(client, token, "POST", "/api/v1/auth/logout")
    as_token(client, token, "GET", f"/api/v1/app/{app_id}")

    assert token not in caplog.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expiry": 60}, "expiry"),
        ({"expiry": 8 * 24 * 3600}, "expiry"),
        ({"capabilities": ["ManageTransformations"]}, "capabilities"),
        ({"capabilities": ["ViewEverything"]}, "capabilities"),
    ],
)
def test_bad_requests_are_refused(client: TestClient, app_id: str, body: Json, field: str) -> None:
    response = client.post(f"{PORTAL}/{app_id}", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", field]


def test_the_application_can_be_created_with_the_link(client: TestClient) -> None:
    uid = unique("portal")

    missing = client.post(f"{PORTAL}/{uid}", json={})
    made = mint(client, uid, application={"name": "Portal Inc"})

    assert missing.status_code == 404
    application = expect(client.get(f"/api/v1/app/{uid}"), 200)
    assert application["name"] == "Portal Inc"
    assert as_token(client, made["token"], "GET", f"/api/v1/app/{application['id']}") == 200


def test_the_live_stream_honours_the_scope(client: TestClient, make_app: MakeApp) -> None:
    mine, other = make_app(), make_app()
    token = mint(client, mine["id"])["token"]
    headers = {"authorization": f"Bearer {token}"}

    with (
        client.websocket_connect(f"/api/v1/app/{other['id']}/stream", headers=headers) as refused,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        refused.receive_text()
    assert closed.value.code == 4403

    with client.websocket_connect(f"/api/v1/app/{mine['id']}/stream", headers=headers) as accepted:
        assert '"stream.hello"' in accepted.receive_text()


def test_ping_and_health_need_no_token(client: TestClient) -> None:
    ping = without_auth(client, "GET", "/api/v1/health/ping")

    assert (ping.status_code, ping.content) == (204, b"")
    assert without_auth(client, "GET", "/api/v1/app").status_code == 401


def test_feature_flags_decide_which_event_types_a_token_sees(client: TestClient, app_id: str) -> None:
    for name, flags in (("open.one", None), ("beta.one", ["beta"]), ("alpha.one", ["alpha"]), ("empty.one", [])):
        expect(client.post("/api/v1/event-type", json={"name": name, "description": "", "featureFlags": flags}), 201)
    plain = mint(client, app_id)["token"]
    beta = mint(client, app_id, featureFlags=["beta"])["token"]

    def visible(token: str) -> list[str]:
        response = client.get("/api/v1/event-type", headers={"authorization": f"Bearer {token}"})
        return [item["name"] for item in expect(response, 200)["data"]]

    assert visible(plain) == ["empty.one", "open.one"]
    assert visible(beta) == ["beta.one", "empty.one", "open.one"]
    assert as_token(client, plain, "GET", "/api/v1/event-type/beta.one") == 404
    assert as_token(client, beta, "GET", "/api/v1/event-type/beta.one") == 200
    assert len(expect(client.get("/api/v1/event-type"), 200)["data"]) == 4, "the admin sees every one"


def test_a_token_reaches_no_admin_resource_nor_another_applications_work(
    client: TestClient, make_app: MakeApp, make_endpoint: MakeEndpoint
) -> None:
    mine, other = make_app(), make_app()
    own_endpoint, their_endpoint = make_endpoint(app=mine["id"]), make_endpoint(app=other["id"])
    operational = expect(client.post(OPERATIONAL, json={"url": "https://127.0.0.1:9/ops"}), 201)
    their_task = expect(client.post(f"/api/v1/app/{other['id']}/msg/expunge-all-contents"), 202)
    token = mint(client, mine["id"])["token"]
    window = {"since": "2020-01-01T00:00:00Z"}
    theirs = f"/api/v1/app/{other['id']}"

    forbidden: list[tuple[str, str, Json | None]] = [
        # Operational webhooks: the admin's alone, each operation.
        ("GET", OPERATIONAL, None),
        ("POST", OPERATIONAL, {"url": "https://127.0.0.1:9/mine"}),
        ("GET", f"{OPERATIONAL}/{operational['id']}", None),
        ("PUT", f"{OPERATIONAL}/{operational['id']}", {"url": "https://127.0.0.1:9/x"}),
        ("DELETE", f"{OPERATIONAL}/{operational['id']}", None),
        ("GET", f"{OPERATIONAL}/{operational['id']}/secret", None),
        ("POST", f"{OPERATIONAL}/{operational['id']}/secret/rotate", {}),
        ("GET", f"{OPERATIONAL}/{operational['id']}/headers", None),
        ("PUT", f"{OPERATIONAL}/{operational['id']}/headers", {"headers": {}}),
        # ...nor through the hidden application that holds them.
        ("GET", f"/api/v1/app/{OPERATIONAL_APP_ID}/endpoint", None),
        # Background tasks, another application's included.
        ("GET", "/api/v1/background-task", None),
        ("GET", f"/api/v1/background-task/{their_task['id']}", None),
        # Another application's replays and expunges.
        ("POST", f"{theirs}/endpoint/{their_endpoint['id']}/replay-missing", window),
        ("POST", f"{theirs}/endpoint/{their_endpoint['id']}/bulk-replay", window),
        ("POST", f"{theirs}/endpoint/{their_endpoint['id']}/recover", window),
        ("POST", f"{theirs}/msg/bulk-expunge", {"ids": ["msg_x"]}),
        ("POST", f"{theirs}/msg/expunge-all-contents", None),
        # Changes to the event type catalogue.
        ("POST", "/api/v1/event-type", {"name": "x.made", "description": ""}),
        ("PUT", "/api/v1/event-type/x.made", {"description": ""}),
        ("PATCH", "/api/v1/event-type/x.made", {"description": "changed"}),
        ("DELETE", "/api/v1/event-type/x.made", None),
        ("POST", "/api/v1/event-type/import/openapi", {"spec": {"openapi": "3.1.0", "webhooks": {}}}),
        ("GET", "/api/v1/event-type/export/openapi", None),
    ]
    for method, url, body in forbidden:
        response = client.request(method, url, headers={"authorization": f"Bearer {token}"}, json=body)
        assert response.status_code == 403, (method, url, response.text)
    # Another application's endpoint under its own application's path: no such endpoint there.
    mine_path = f"/api/v1/app/{mine['id']}"
    for named in (their_endpoint["id"], operational["id"]):
        assert as_token(client, token, "POST", f"{mine_path}/endpoint/{named}/bulk-replay", json=window) == 404
    # The admin's view: nothing changed, and the token's own replays do work.
    assert expect(client.get(f"{OPERATIONAL}/{operational['id']}"), 200)["url"] == operational["url"]
    own_replay = f"{mine_path}/endpoint/{own_endpoint['id']}/replay-missing"
    assert as_token(client, token, "POST", own_replay, json=window) == 202


def test_the_operational_application_has_no_live_stream(client: TestClient, app_id: str) -> None:
    expect(client.post(OPERATIONAL, json={"url": "https://127.0.0.1:9/ops"}), 201)
    token = mint(client, app_id)["token"]

    for who in ({"authorization": f"Bearer {token}"}, {}):  # a scoped token, the admin (the client's default)
        with (
            client.websocket_connect(f"/api/v1/app/{OPERATIONAL_APP_ID}/stream", headers=who) as refused,
            pytest.raises(WebSocketDisconnect) as closed,
        ):
            refused.receive_text()
        assert closed.value.code == 4404, "hidden as in the REST API: its deliveries are streamed to no one"


def test_a_uid_shaped_as_another_applications_id_reaches_nothing_of_it(
    client: TestClient, make_app: MakeApp, make_endpoint: MakeEndpoint, settings: Settings
) -> None:
    """The attack of a uid set to another application's id: such a uid is refused at creation now,
    but a database written before may hold one (set here directly), and it must still name nothing."""
    victim = make_app(name="victim")
    attacker = make_app(name="attacker")
    victim_endpoint = make_endpoint(app=victim["id"])
    with sqlite3.connect(_database(settings)) as database:
        database.execute("UPDATE application SET uid = ? WHERE id = ?", (victim["id"], attacker["id"]))
    token = mint(client, attacker["id"])["token"]
    victim_base = f"/api/v1/app/{victim['id']}"

    for method, url, *body in [
        ("GET", victim_base),
        ("GET", f"{victim_base}/endpoint"),
        ("GET", f"{victim_base}/endpoint/{victim_endpoint['id']}/secret"),
        ("GET", f"{victim_base}/msg"),
        ("POST", f"{victim_base}/endpoint", {"url": "http://127.0.0.1:9/stolen"}),
    ]:
        response = client.request(
            method, url, headers={"authorization": f"Bearer {token}"}, json=body[0] if body else None
        )
        assert response.status_code == 403, (method, url, response.text)
        assert "whsec_" not in response.text
    assert [e["id"] for e in expect(client.get(f"{victim_base}/endpoint"), 200)["data"]] == [victim_endpoint["id"]]
    # The admin's view: the id names the application it is the id of, never the one holding it as a uid.
    assert expect(client.get(victim_base), 200)["name"] == "victim"
    assert expect(client.get(f"/api/v1/app/{attacker['id']}"), 200)["name"] == "attacker"
    sent = expect(client.post(f"{victim_base}/msg", json={"eventType": "a", "payload": {}}), 202)
    assert expect(client.get(f"{victim_base}/msg/{sent['id']}"), 200)["id"] == sent["id"]
    expect(client.get(f"/api/v1/app/{attacker['id']}/msg/{sent['id']}"), 404)
    # Its live stream neither.
    with (
        client.websocket_connect(f"{victim_base}/stream", headers={"authorization": f"Bearer {token}"}) as stream,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        stream.receive_text()
    assert closed.value.code == 4403


@pytest.mark.parametrize("query", ["", "?with_content=true"], ids=["shortcut", "route"])
def test_no_application_token_sends_messages(client: TestClient, app_id: str, query: str) -> None:
    """Sending is the operator's: a customer's link must not mint validly signed events, on the ingest
    shortcut's conditions (a JSON body, no query: messages.hot_route) or the route's."""
    body = {"eventType": "a", "payload": {}}
    for token in (mint(client, app_id)["token"], mint(client, app_id, readOnly=True)["token"]):
        refused = client.post(
            f"/api/v1/app/{app_id}/msg{query}", json=body, headers={"authorization": f"Bearer {token}"}
        )
        assert refused.status_code == 403, refused.text
        assert "admin token" in refused.json()["detail"]
    assert expect(client.get(f"/api/v1/app/{app_id}/msg"), 200)["data"] == []
    expect(client.post(f"/api/v1/app/{app_id}/msg{query}", json=body), 202)


EXAMPLE = {"type": "object", "examples": [{"order": 42}]}
# What a token of each set of capabilities may do, of the operations below (the rest it is refused).
CAN = {
    "read": {"read"},
    "view-secret": {"read", "secret"},
    "manage-secret": {"read", "secret", "rotate"},
    "manage-endpoint": {"read", "secret", "rotate", "create", "patch", "headers"},
    "create-attempts": {"read", "example", "resend", "recover"},
    "all": {"read", "secret", "rotate", "create", "patch", "headers", "example", "resend", "recover"},
}


@pytest.mark.parametrize(
    ("fields", "can"),
    [
        ({"readOnly": True}, "read"),
        ({"capabilities": ["ViewBase"]}, "read"),
        ({"capabilities": []}, "read"),  # ViewBase is always granted
        ({"capabilities": ["ViewBase", "ViewEndpointSecret"]}, "view-secret"),
        ({"capabilities": ["ManageEndpointSecret"]}, "manage-secret"),
        ({"capabilities": ["ViewBase", "ManageEndpoint"]}, "manage-endpoint"),
        ({"capabilities": ["ViewBase", "CreateAttempts"]}, "create-attempts"),
        ({}, "all"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_capabilities_decide_what_a_token_may_do(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, fields: Json, can: str
) -> None:
    expect(client.put("/api/v1/event-type/order.paid", json={"description": "", "schemas": {"1": EXAMPLE}}), 201)
    endpoint = make_endpoint()
    message = expect(client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "order.paid", "payload": {}}), 202)
    token = mint(client, app_id, **fields)["token"]
    base = f"/api/v1/app/{app_id}"
    at = f"{base}/endpoint/{endpoint['id']}"
    operations: dict[str, tuple[str, str, Json | None]] = {
        "read": ("GET", at, None),
        "secret": ("GET", f"{at}/secret", None),
        "rotate": ("POST", f"{at}/secret/rotate", {}),
        "create": ("POST", f"{base}/endpoint", {"url": "http://127.0.0.1:9/new"}),
        "patch": ("PATCH", at, {"description": "changed"}),
        "headers": ("PATCH", f"{at}/headers", {"headers": {"X-Team": "a"}}),
        "example": ("POST", f"{at}/send-example", {"eventType": "order.paid"}),
        "resend": ("POST", f"{base}/msg/{message['id']}/endpoint/{endpoint['id']}/resend", None),
        "recover": ("POST", f"{at}/recover", {"since": "2020-01-01T00:00:00Z"}),
        # No capability's: the operator's alone.
        "send": ("POST", f"{base}/msg", {"eventType": "order.paid", "payload": {}}),
        "expunge": ("DELETE", f"{base}/msg/{message['id']}/content", None),
        "delete-app": ("DELETE", base, None),
    }
    for name, (method, url, body) in operations.items():
        response = client.request(method, url, json=body, headers={"authorization": f"Bearer {token}"})
        if name in CAN[can]:
            assert response.status_code < 400, (name, response.text)
        else:
            assert response.status_code == 403, (name, response.text)
            assert response.json()["code"] == "forbidden"
    assert expect(client.get(base), 200)["id"] == app_id


def test_what_hookpost_cannot_grant_is_refused_clearly(client: TestClient, app_id: str) -> None:
    transformations = client.post(f"{PORTAL}/{app_id}", json={"capabilities": ["ViewBase", "ManageTransformations"]})
    assert transformations.status_code == 422
    assert "ManageTransformations is not supported" in transformations.text
    both = client.post(f"{PORTAL}/{app_id}", json={"readOnly": True, "capabilities": ["ManageEndpoint"]})
    assert both.status_code == 422
    assert "readOnly" in both.text
    # readOnly with ViewBase alone says the same twice: taken.
    expect(client.post(f"{PORTAL}/{app_id}", json={"readOnly": True, "capabilities": ["ViewBase"]}), 200)


def test_expire_all_is_the_admins_and_may_leave_a_grace_period(
    client: TestClient, app_id: str, settings: Settings
) -> None:
    token = mint(client, app_id)["token"]
    expire_all = f"/api/v1/auth/app/{app_id}/expire-all"
    assert as_token(client, token, "POST", expire_all, json={}) == 403
    expect(client.post("/api/v1/auth/app/app_unknown/expire-all", json={}), 404)
    assert "session" in expect(client.post(expire_all, json={"sessionIds": ["s1"]}), 422)["detail"][0]["msg"]

    client.post(expire_all, json={"expiry": 600})  # still valid for the 10 minutes given

    assert as_token(client, token, "GET", f"/api/v1/app/{app_id}") == 200
    with sqlite3.connect(_database(settings)) as database:
        [(expires_at,)] = database.execute("SELECT expires_at FROM access_token").fetchall()
    assert datetime.fromisoformat(expires_at).replace(tzinfo=UTC) < datetime.now(UTC) + timedelta(seconds=601)
