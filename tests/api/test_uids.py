"""Uids, wherever they come from: a body, or the path of a PUT (or of a create on the way,
``app-portal-access`` and ``POST /msg`` with ``application``) that makes the path the new
thing's uid. Whatever the way in, the same rule and the same 422 naming the field."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from hookpost.api.errors import install_error_handlers
from tests.api.helpers import MakeApp, expect

URL = "https://example.com/hook"
# Not uids: a space, a NUL, a slash's neighbour, too long.
BAD_PATHS = ["a b", "a\x00b", "a:b", "x" * 257]


def _upserts(app_id: str, path: str) -> list[tuple[str, str, dict[str, object]]]:
    """Every route that makes ``path`` the uid of what it creates: method, URL, body."""
    segment = quote(path, safe="")
    return [
        ("PUT", f"/api/v1/app/{segment}", {"name": "m"}),
        ("PUT", f"/api/v1/app/{app_id}/endpoint/{segment}", {"url": URL}),
        ("PUT", f"/api/v1/operational-webhook/endpoint/{segment}", {"url": URL}),
        ("PUT", f"/api/v1/event-type/{segment}", {"description": "d"}),
        ("POST", f"/api/v1/auth/app-portal-access/{segment}", {"application": {"name": "m"}}),
        ("POST", f"/api/v1/app/{segment}/msg", {"eventType": "e", "payload": {}, "application": {"name": "m"}}),
    ]


def _path_parameter(url: str) -> str:
    if "/endpoint/" in url:
        return "endpoint_id"
    return "event_type_name" if "/event-type/" in url else "app_id"


@pytest.mark.parametrize("path", BAD_PATHS, ids=["space", "nul", "colon", "257-chars"])
@pytest.mark.parametrize("route", range(6), ids=["app", "endpoint", "operational", "event-type", "portal", "msg"])
def test_an_upsert_path_that_is_not_a_uid_is_422_naming_it(
    client: TestClient, app_id: str, path: str, route: int
) -> None:
    method, url, body = _upserts(app_id, path)[route]

    response = client.request(method, url, json=body)

    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == "validation"
    assert error["detail"][0]["loc"] == ["path", _path_parameter(url)]
    assert error["detail"][0]["msg"]


def test_nothing_is_stored_under_a_uid_post_would_refuse(client: TestClient, make_app: MakeApp) -> None:
    application = make_app()
    for method, url, body in _upserts(application["id"], "a b"):
        client.request(method, url, json=body)

    uids = [app["uid"] for app in expect(client.get("/api/v1/app", params={"limit": 250}), 200)["data"]]
    endpoints = expect(client.get(f"/api/v1/app/{application['id']}/endpoint"), 200)["data"]
    operational = expect(client.get("/api/v1/operational-webhook/endpoint"), 200)["data"]
    assert "a b" not in uids
    assert endpoints == []
    assert operational == []


def test_a_valid_uid_in_the_path_still_creates(client: TestClient, app_id: str) -> None:
    created = expect(client.put(f"/api/v1/app/{app_id}/endpoint/ep-own.uid_1", json={"url": URL}), 201)
    operational = expect(client.put("/api/v1/operational-webhook/endpoint/ops-1", json={"url": URL}), 201)

    assert created["uid"] == "ep-own.uid_1"
    assert operational["uid"] == "ops-1"
    # Created by PUT, it has a secret of its own, as one created by POST does.
    assert expect(client.get(f"/api/v1/app/{app_id}/endpoint/ep-own.uid_1/secret"), 200)["key"].startswith("whsec_")


def test_a_model_refusing_what_request_validation_let_through_is_422_not_500() -> None:
    """The last line: a service building a model from request values that its own rules
    refuse answers 422 in the validation shape, never 500."""

    class Strict(BaseModel):
        count: int

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/build")
    async def build(count: str) -> None:
        Strict.model_validate({"count": count})

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/build", params={"count": "many"})

    assert response.status_code == 422
    assert response.json()["code"] == "validation"
    assert response.json()["detail"][0]["loc"] == ["count"]


# --- A uid may not look like an id ------------------------------------------------------------

ID_LIKE = "app_" + "2Uq3vHk8mD0aZ9xY7wB6cE"  # the shape kit.ids.new_id makes


def _id_like_uid_refusals(client: TestClient, make_app: MakeApp) -> list[tuple[str, str, dict[str, object], list[str]]]:
    """Every way a uid gets in, each given an id's shape: method, URL, body, the loc expected."""
    application = make_app()
    app = application["id"]
    endpoint = expect(client.post(f"/api/v1/app/{app}/endpoint", json={"url": URL}), 201)["id"]
    operational = expect(client.post("/api/v1/operational-webhook/endpoint", json={"url": URL}), 201)["id"]
    body_uid = ["body", "uid"]
    return [
        # Another application's id, as the attacker did.
        ("POST", "/api/v1/app", {"name": "m", "uid": app}, body_uid),
        ("POST", "/api/v1/app", {"name": "m", "uid": ID_LIKE}, body_uid),
        ("PATCH", f"/api/v1/app/{app}", {"uid": ID_LIKE}, body_uid),
        ("PUT", f"/api/v1/app/{app}", {"name": "m", "uid": ID_LIKE}, body_uid),
        ("PUT", "/api/v1/app/fresh-app", {"name": "m", "uid": ID_LIKE}, body_uid),
        # An endpoint's id as the path of an application's upsert: it would become the uid.
        ("PUT", f"/api/v1/app/{endpoint}", {"name": "m"}, ["path", "app_id"]),
        ("POST", f"/api/v1/auth/app-portal-access/{endpoint}", {"application": {"name": "m"}}, ["path", "app_id"]),
        ("POST", "/api/v1/auth/app-portal-access/fresh", {"application": {"name": "m", "uid": ID_LIKE}},
         ["body", "application", "uid"]),
        ("POST", f"/api/v1/app/{endpoint}/msg", {"eventType": "e", "payload": {}, "application": {"name": "m"}},
         ["path", "app_id"]),
        ("POST", f"/api/v1/app/{app}/endpoint", {"url": URL, "uid": endpoint}, body_uid),
        ("PATCH", f"/api/v1/app/{app}/endpoint/{endpoint}", {"uid": "ep_" + ID_LIKE[4:]}, body_uid),
        ("PUT", f"/api/v1/app/{app}/endpoint/{endpoint}", {"url": URL, "uid": ID_LIKE}, body_uid),
        ("PUT", f"/api/v1/app/{app}/endpoint/{app}", {"url": URL}, ["path", "endpoint_id"]),
        ("POST", "/api/v1/operational-webhook/endpoint", {"url": URL, "uid": ID_LIKE}, body_uid),
        ("PUT", f"/api/v1/operational-webhook/endpoint/{operational}", {"url": URL, "uid": ID_LIKE}, body_uid),
        ("PUT", f"/api/v1/operational-webhook/endpoint/{app}", {"url": URL}, ["path", "endpoint_id"]),
        # A message's eventId is its uid (GET .../msg/{msg_id} takes either).
        ("POST", f"/api/v1/app/{app}/msg", {"eventType": "e", "payload": {}, "eventId": "msg_" + ID_LIKE[4:]},
         ["body", "eventId"]),
    ]  # fmt: skip


def test_a_uid_shaped_like_an_id_is_refused_on_every_way_in(client: TestClient, make_app: MakeApp) -> None:
    for method, url, body, loc in _id_like_uid_refusals(client, make_app):
        response = client.request(method, url, json=body)

        assert response.status_code == 422, (method, url, body, response.text)
        detail = response.json()["detail"][0]
        assert detail["loc"] == loc, (method, url, detail)
        assert "may not look like an id" in detail["msg"]


@pytest.mark.parametrize(
    "uid",
    [
        "app_customer-1",  # a prefix, but not followed by what an id is
        "app_" + "x" * 21,
        "app_" + "x" * 23,
        "cust_" + ID_LIKE[4:],  # an id's body, but not one of Hookpost's prefixes
        "APP_" + ID_LIKE[4:],
    ],
)
def test_uids_that_merely_resemble_an_id_are_accepted(client: TestClient, uid: str) -> None:
    created = expect(client.post("/api/v1/app", json={"name": "m", "uid": uid}), 201)

    assert created["uid"] == uid
    assert expect(client.get(f"/api/v1/app/{uid}"), 200)["id"] == created["id"]


def test_the_openapi_document_states_the_rule(client: TestClient) -> None:
    schemas = expect(client.get("/openapi.json"), 200)["components"]["schemas"]

    for name in ["ApplicationIn", "ApplicationPatch", "EndpointIn", "EndpointUpdate", "EndpointPatch"]:
        (string,) = [branch for branch in schemas[name]["properties"]["uid"]["anyOf"] if branch["type"] == "string"]
        assert string["not"]["pattern"].startswith("^(?:app|ep|msg"), name
