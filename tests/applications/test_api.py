"""Applications: /api/v1/app."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from hookpost.applications.service import OPERATIONAL_APP_ID
from hookpost.settings import Settings
from tests.api.helpers import MakeApp, expect, unique, walk

APPS = "/api/v1/app"


def test_create_returns_the_application(client: TestClient) -> None:
    uid = unique("acme")
    body = {"name": "Acme", "uid": uid, "throttleRate": 10, "metadata": {"plan": "pro"}}

    app = expect(client.post(APPS, json=body), 201)

    assert app["id"].startswith("app_")
    assert (app["name"], app["uid"], app["throttleRate"], app["metadata"]) == ("Acme", uid, 10, {"plan": "pro"})
    created_at = datetime.fromisoformat(app["createdAt"])
    assert created_at.utcoffset() is not None, "timestamps carry their zone"
    assert datetime.fromisoformat(app["updatedAt"]) >= created_at


def test_create_without_uid_or_options(client: TestClient) -> None:
    app = expect(client.post(APPS, json={"name": "Plain"}), 201)

    assert (app["uid"], app["throttleRate"], app["metadata"]) == (None, None, {})


def test_applications_without_uid_do_not_conflict(client: TestClient) -> None:
    first = expect(client.post(APPS, json={"name": "A"}), 201)
    second = expect(client.post(APPS, json={"name": "A"}), 201)

    assert first["id"] != second["id"]


def test_duplicate_uid_conflicts(client: TestClient, make_app: MakeApp) -> None:
    uid = make_app(uid=unique("dup"))["uid"]

    response = client.post(APPS, json={"name": "Again", "uid": uid})

    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert isinstance(response.json()["detail"], str)
    assert len(expect(client.get(APPS), 200)["data"]) == 1


def test_get_if_exists_returns_the_existing_application(client: TestClient, make_app: MakeApp) -> None:
    existing = make_app(uid=unique("gie"))

    response = client.post(APPS, params={"get_if_exists": "true"}, json={"name": "Other", "uid": existing["uid"]})

    assert response.status_code == 200
    assert response.json() == existing
    assert len(expect(client.get(APPS), 200)["data"]) == 1


def test_get_if_exists_creates_when_missing(client: TestClient) -> None:
    uid = unique("fresh")

    app = expect(client.post(APPS, params={"get_if_exists": "true"}, json={"name": "Fresh", "uid": uid}), 201)

    assert app["uid"] == uid


def test_get_by_id_and_by_uid(client: TestClient, make_app: MakeApp) -> None:
    app = make_app(uid=unique("both"))

    assert expect(client.get(f"{APPS}/{app['id']}"), 200) == app
    assert expect(client.get(f"{APPS}/{app['uid']}"), 200) == app


@pytest.mark.parametrize("app_id", ["app_2abcdefghijklmnopqrstu", "no-such-uid"])
def test_get_unknown_is_404(client: TestClient, app_id: str) -> None:
    response = client.get(f"{APPS}/{app_id}")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_list_pages_forward_then_back(client: TestClient, make_app: MakeApp) -> None:
    made = {make_app()["id"] for _ in range(5)}

    pages = walk(client, APPS, limit=2)

    forward = [app["id"] for page in pages for app in page["data"]]
    assert [len(page["data"]) for page in pages] == [2, 2, 1]
    assert sorted(forward) == sorted(made)
    assert len(set(forward)) == 5, "every application exactly once"
    assert forward == sorted(forward), "ascending by default, ids sort by creation"
    assert [page["done"] for page in pages] == [False, False, True]

    # Back from the last page: the pages before it, in the same order as going forward.
    back: list[list[str]] = []
    prev = pages[-1]["prevIterator"]
    for _ in range(10):
        page = expect(client.get(APPS, params={"limit": 2, "iterator": prev}), 200)
        if not page["data"]:
            break
        back.append([app["id"] for app in page["data"]])
        prev = page["prevIterator"]
    assert back == [[app["id"] for app in page["data"]] for page in reversed(pages[:-1])]


def test_list_descending(client: TestClient, make_app: MakeApp) -> None:
    made = [make_app()["id"] for _ in range(3)]

    pages = walk(client, APPS, limit=2, order="descending")

    listed = [app["id"] for page in pages for app in page["data"]]
    assert listed == sorted(made, reverse=True)


def test_list_empty(client: TestClient) -> None:
    page = expect(client.get(APPS), 200)

    assert page["data"] == []
    assert page["done"] is True


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 251}, {"limit": "x"}, {"order": "sideways"}])
def test_list_rejects_bad_parameters(client: TestClient, params: dict[str, object]) -> None:
    response = client.get(APPS, params=params)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", next(iter(params))]


def test_put_updates_an_existing_application(client: TestClient, make_app: MakeApp) -> None:
    app = make_app(metadata={"a": "1"})

    updated = expect(client.put(f"{APPS}/{app['id']}", json={"name": "Renamed", "metadata": {"b": "2"}}), 200)

    assert updated["id"] == app["id"]
    assert (updated["name"], updated["metadata"]) == ("Renamed", {"b": "2"})
    assert expect(client.get(f"{APPS}/{app['id']}"), 200)["name"] == "Renamed"


def test_put_creates_with_the_path_as_uid(client: TestClient) -> None:
    uid = unique("put")

    app = expect(client.put(f"{APPS}/{uid}", json={"name": "Upserted"}), 201)

    assert app["uid"] == uid
    assert app["id"].startswith("app_")
    assert expect(client.get(f"{APPS}/{uid}"), 200)["id"] == app["id"]


def test_put_by_uid_is_idempotent(client: TestClient) -> None:
    """PUT /app/{uid} twice is one application, still found by that uid.

    A second PUT without ``uid`` in the body must not strip the uid the first one gave
    it, or a third PUT creates a second application.
    """
    uid = unique("again")
    first = expect(client.put(f"{APPS}/{uid}", json={"name": "One"}), 201)

    second = expect(client.put(f"{APPS}/{uid}", json={"name": "Two"}), 200)

    assert second["id"] == first["id"]
    assert second["uid"] == uid
    third = client.put(f"{APPS}/{uid}", json={"name": "Three"})
    assert third.status_code == 200
    assert third.json()["id"] == first["id"]
    assert len(expect(client.get(APPS), 200)["data"]) == 1


def test_put_to_an_unknown_id_is_404(client: TestClient) -> None:
    response = client.put(f"{APPS}/app_2abcdefghijklmnopqrstu", json={"name": "Nope"})

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert expect(client.get(APPS), 200)["data"] == []


def test_put_with_a_taken_uid_conflicts(client: TestClient, make_app: MakeApp) -> None:
    taken = make_app(uid=unique("taken"))["uid"]
    app = make_app()

    response = client.put(f"{APPS}/{app['id']}", json={"name": "X", "uid": taken})

    assert response.status_code == 409
    assert response.json()["code"] == "conflict"


def test_patch_changes_only_what_it_names(client: TestClient, make_app: MakeApp) -> None:
    app = make_app(uid=unique("patch"), metadata={"keep": "me"}, throttleRate=5)

    patched = expect(client.patch(f"{APPS}/{app['id']}", json={"name": "Patched"}), 200)

    assert patched["name"] == "Patched"
    assert (patched["uid"], patched["metadata"], patched["throttleRate"]) == (
        app["uid"],
        {"keep": "me"},
        5,
    )
    assert expect(client.get(f"{APPS}/{app['uid']}"), 200)["name"] == "Patched"


def test_patch_by_uid_and_uid_conflict(client: TestClient, make_app: MakeApp) -> None:
    taken = make_app(uid=unique("taken"))["uid"]
    app = make_app(uid=unique("mine"))

    assert expect(client.patch(f"{APPS}/{app['uid']}", json={"throttleRate": 7}), 200)["throttleRate"] == 7
    response = client.patch(f"{APPS}/{app['uid']}", json={"uid": taken})
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert expect(client.get(f"{APPS}/{app['id']}"), 200)["uid"] == app["uid"]


def test_patch_unknown_is_404(client: TestClient) -> None:
    assert client.patch(f"{APPS}/nope", json={"name": "x"}).status_code == 404


def test_delete_then_404(client: TestClient, make_app: MakeApp) -> None:
    app = make_app(uid=unique("gone"))

    response = client.delete(f"{APPS}/{app['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"{APPS}/{app['id']}").status_code == 404
    assert client.get(f"{APPS}/{app['uid']}").status_code == 404
    assert client.delete(f"{APPS}/{app['id']}").status_code == 404
    # The uid is free again.
    assert client.post(APPS, json={"name": "Reborn", "uid": app["uid"]}).status_code == 201


def test_delete_takes_endpoints_and_messages_with_it(client: TestClient, make_app: MakeApp) -> None:
    app = make_app(uid=unique("cascade"))
    expect(client.post(f"{APPS}/{app['id']}/endpoint", json={"url": "https://127.0.0.1:9/h"}), 201)
    expect(client.post(f"{APPS}/{app['id']}/msg", json={"eventType": "e", "payload": {}}), 202)

    assert client.delete(f"{APPS}/{app['id']}").status_code == 204

    reborn = expect(client.post(APPS, json={"name": "Reborn", "uid": app["uid"]}), 201)
    assert expect(client.get(f"{APPS}/{reborn['uid']}/endpoint"), 200)["data"] == []
    assert expect(client.get(f"{APPS}/{reborn['uid']}/msg"), 200)["data"] == []


def test_delete_reports_endpoint_deleted_for_each_of_its_endpoints(
    client: TestClient, make_app: MakeApp, settings: Settings
) -> None:
    expect(client.post("/api/v1/operational-webhook/endpoint", json={"url": "https://127.0.0.1:9/ops"}), 201)
    app, kept = make_app(uid=unique("watched")), make_app()
    made = [
        expect(
            client.post(f"{APPS}/{app['id']}/endpoint", json={"url": f"https://127.0.0.1:9/{n}", "uid": f"e{n}"}), 201
        )
        for n in range(2)
    ]
    expect(client.post(f"{APPS}/{kept['id']}/endpoint", json={"url": "https://127.0.0.1:9/kept"}), 201)

    assert client.delete(f"{APPS}/{app['id']}").status_code == 204

    with sqlite3.connect(make_url(settings.database_url).database or "") as db:
        rows = db.execute(
            "SELECT m.payload FROM message m JOIN delivery d ON d.msg_id = m.id "
            "WHERE m.app_id = ? AND m.event_type = 'endpoint.deleted'",
            (OPERATIONAL_APP_ID,),
        ).fetchall()
    reported = sorted((json.loads(payload)["data"] for (payload,) in rows), key=lambda data: data["endpointUid"])
    assert reported == [
        {"appId": app["id"], "appUid": app["uid"], "endpointId": endpoint["id"], "endpointUid": endpoint["uid"]}
        for endpoint in made
    ], "one event per endpoint, each owed to the operational endpoint"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "uid": "has space"}, "uid"),
        ({"name": "x", "throttleRate": 0}, "throttleRate"),
        ({"name": "x", "metadata": {"n": 1}}, "metadata"),
    ],
)
def test_create_validates_fields(client: TestClient, body: dict[str, object], field: str) -> None:
    response = client.post(APPS, json=body)

    assert response.status_code == 422
    assert response.json()["code"] == "validation"
    assert response.json()["detail"][0]["loc"][:2] == ["body", field]
