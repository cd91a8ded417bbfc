"""Event types: /api/v1/event-type, what endpoints may filter on, payload schemas, OpenAPI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hookpost.app import create_app
from hookpost.settings import Settings
from tests.api.helpers import Json, MakeEndpoint, expect, unique
from tests.conftest import ADMIN_TOKEN

EVENT_TYPES = "/api/v1/event-type"

INVOICE_SCHEMA: Json = {
    "type": "object",
    "required": ["invoice"],
    "properties": {"invoice": {"type": "integer"}, "lines": {"type": "array", "items": {"type": "object"}}},
    "examples": [{"invoice": 1}, {"invoice": 2, "lines": []}],
}


def create(client: TestClient, **fields: Any) -> Json:
    body = {"name": unique("invoice.paid"), "description": "paid", **fields}
    return expect(client.post(EVENT_TYPES, json=body), 201)


def names(page: Json) -> list[str]:
    return [item["name"] for item in page["data"]]


def test_create_returns_svix_shape(client: TestClient) -> None:
    made = create(client, schemas={"1": INVOICE_SCHEMA}, groupName="billing", featureFlags=["beta"], deprecated=True)

    assert made["schemas"] == {"1": INVOICE_SCHEMA}
    assert (made["groupName"], made["featureFlags"], made["featureFlag"]) == ("billing", ["beta"], "beta")
    assert (made["archived"], made["deprecated"]) == (False, True)
    assert made["createdAt"].endswith("Z")
    assert expect(client.get(f"{EVENT_TYPES}/{made['name']}"), 200) == made


def test_same_name_twice_is_a_conflict(client: TestClient) -> None:
    made = create(client)

    response = client.post(EVENT_TYPES, json={"name": made["name"], "description": "again"})

    assert response.status_code == 409, response.text


def test_list_hides_archived_and_schemas_unless_asked(client: TestClient) -> None:
    kept = create(client, name="a.kept", schemas={"1": INVOICE_SCHEMA})
    gone = create(client, name="b.gone")
    archived = client.delete(f"{EVENT_TYPES}/{gone['name']}")
    assert archived.status_code == 204

    listed = expect(client.get(EVENT_TYPES), 200)
    everything = expect(client.get(EVENT_TYPES, params={"include_archived": "true", "with_content": "true"}), 200)

    assert names(listed) == [kept["name"]]
    assert listed["data"][0]["schemas"] is None
    assert names(everything) == [kept["name"], gone["name"]]
    assert everything["data"][0]["schemas"] == {"1": INVOICE_SCHEMA}
    assert everything["data"][1]["archived"] is True


def test_list_pages_by_name(client: TestClient) -> None:
    for name in ("p.1", "p.2", "p.3"):
        create(client, name=name)

    first = expect(client.get(EVENT_TYPES, params={"limit": 2}), 200)
    rest = expect(client.get(EVENT_TYPES, params={"limit": 2, "iterator": first["iterator"]}), 200)
    backwards = expect(client.get(EVENT_TYPES, params={"limit": 2, "order": "descending"}), 200)

    assert (names(first), first["done"]) == (["p.1", "p.2"], False)
    assert (names(rest), rest["done"]) == (["p.3"], True)
    assert names(backwards) == ["p.3", "p.2"]


def test_create_brings_back_an_archived_one(client: TestClient) -> None:
    made = create(client)
    client.delete(f"{EVENT_TYPES}/{made['name']}")

    again = expect(client.post(EVENT_TYPES, json={"name": made["name"], "description": "back"}), 201)

    assert (again["archived"], again["description"]) == (False, "back")


def test_put_creates_then_replaces_and_patch_changes_what_it_names(client: TestClient) -> None:
    name = unique("user.created")
    made = client.put(f"{EVENT_TYPES}/{name}", json={"description": "v1", "groupName": "users"})
    replaced = client.put(f"{EVENT_TYPES}/{name}", json={"description": "v2"})
    patched = expect(client.patch(f"{EVENT_TYPES}/{name}", json={"deprecated": True}), 200)

    assert (made.status_code, replaced.status_code) == (201, 200)
    assert replaced.json()["groupName"] is None, "PUT replaces the whole record"
    assert (patched["description"], patched["deprecated"]) == ("v2", True)


def test_expunge_deletes_it(client: TestClient) -> None:
    made = create(client)

    assert client.delete(f"{EVENT_TYPES}/{made['name']}", params={"expunge": "true"}).status_code == 204

    assert client.get(f"{EVENT_TYPES}/{made['name']}").status_code == 404
    listed = expect(client.get(EVENT_TYPES, params={"include_archived": "true"}), 200)
    assert made["name"] not in names(listed)


@pytest.mark.parametrize(
    ("schemas", "says"),
    [
        ({"1": {"type": "no-such-type"}}, "not a valid JSON Schema"),
        ({"v1": {"type": "object"}}, "not a whole number"),
        ({"1": "object"}, "is an object"),
    ],
)
def test_an_invalid_schema_is_refused(client: TestClient, schemas: Json, says: str) -> None:
    response = client.post(EVENT_TYPES, json={"name": unique("bad"), "description": "", "schemas": schemas})

    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"][:2] == ["body", "schemas"]
    assert says in error["msg"]


def test_an_endpoint_may_filter_only_on_known_event_types(client: TestClient, app_id: str) -> None:
    known = create(client)["name"]
    archived = create(client)["name"]
    client.delete(f"{EVENT_TYPES}/{archived}")
    url = f"/api/v1/app/{app_id}/endpoint"

    refused = client.post(url, json={"url": "https://127.0.0.1:9/h", "eventTypes": [known, "nope.x", archived]})
    accepted = client.post(url, json={"url": "https://127.0.0.1:9/h", "eventTypes": [known]})

    assert refused.status_code == 422, refused.text
    [error] = refused.json()["detail"]
    assert error["loc"] == ["body", "eventTypes"]
    assert f"nope.x, {archived}" in error["msg"]
    assert accepted.status_code == 201, accepted.text
    patched = client.patch(f"{url}/{accepted.json()['id']}", json={"eventTypes": ["nope.y"]})
    assert patched.status_code == 422
    assert "nope.y" in patched.json()["detail"][0]["msg"]


def test_archiving_keeps_existing_filters(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    name = create(client)["name"]
    endpoint = make_endpoint(eventTypes=[name])
    client.delete(f"{EVENT_TYPES}/{name}")

    # Changing something else leaves the (now archived) filter alone, as Svix does.
    patched = expect(client.patch(f"/api/v1/app/{app_id}/endpoint/{endpoint['id']}", json={"description": "x"}), 200)

    assert patched["eventTypes"] == [name]


@pytest.fixture
def configured(settings: Settings, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """The in-memory app with the settings this test names (``@pytest.mark.parametrize`` indirect)."""
    changed = settings.model_copy(update=request.param)
    with TestClient(create_app(changed), headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as test_client:
        yield test_client


@pytest.mark.parametrize("configured", [{"require_known_event_types": False}], indirect=True)
def test_the_catalogue_requirement_can_be_relaxed(configured: TestClient) -> None:
    app = expect(configured.post("/api/v1/app", json={"name": "a"}), 201)

    response = configured.post(
        f"/api/v1/app/{app['id']}/endpoint", json={"url": "https://127.0.0.1:9/h", "eventTypes": ["never.declared"]}
    )

    assert response.status_code == 201, response.text


@pytest.mark.parametrize("configured", [{"validate_payloads": True}], indirect=True)
def test_payloads_are_checked_against_the_schema_when_asked(configured: TestClient) -> None:
    name = create(configured, schemas={"1": {"type": "object"}, "2": INVOICE_SCHEMA})["name"]
    app = expect(configured.post("/api/v1/app", json={"name": "a"}), 201)
    url = f"/api/v1/app/{app['id']}/msg"

    wrong_type = configured.post(url, json={"eventType": name, "payload": {"invoice": "forty-two"}})
    missing = configured.post(url, json={"eventType": name, "payload": {"lines": []}})
    nested = configured.post(url, json={"eventType": name, "payload": {"invoice": 1, "lines": [3]}})
    good = configured.post(url, json={"eventType": name, "payload": {"invoice": 42}})
    no_schema = configured.post(url, json={"eventType": "anything.else", "payload": {"x": 1}})

    assert wrong_type.status_code == 422, wrong_type.text
    assert wrong_type.json()["detail"][0]["loc"] == ["body", "payload", "invoice"]
    assert "not of type 'integer'" in wrong_type.json()["detail"][0]["msg"]
    assert missing.status_code == 422
    assert "'invoice' is a required property" in missing.json()["detail"][0]["msg"]
    assert nested.json()["detail"][0]["loc"] == ["body", "payload", "lines", "0"]
    assert (good.status_code, no_schema.status_code) == (202, 202)
    assert len(expect(configured.get(url), 200)["data"]) == 2, "nothing refused was stored"


def test_payloads_are_not_checked_by_default(client: TestClient, app_id: str) -> None:
    name = create(client, schemas={"1": INVOICE_SCHEMA})["name"]

    response = client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": name, "payload": {"invoice": "x"}})

    assert response.status_code == 202, response.text


OPENAPI: Json = {
    "openapi": "3.1.0",
    "info": {"title": "Acme", "version": "1"},
    "webhooks": {
        "invoice.paid": {
            "post": {
                "summary": "An invoice was paid",
                "x-svix-group-name": "billing",
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Inv"}}}},
            }
        },
        "invoice.voided": {
            "post": {
                "description": "An invoice was voided",
                "deprecated": True,
                "requestBody": {
                    "content": {"application/json": {"schema": {"type": "object"}, "example": {"invoice": 7}}}
                },
            }
        },
    },
    "components": {
        "schemas": {
            "Inv": {"type": "object", "properties": {"id": {"$ref": "#/components/schemas/Id"}}},
            "Id": {"type": "integer"},
        }
    },
}


def test_import_openapi_creates_event_types(client: TestClient) -> None:
    answer = expect(client.post(f"{EVENT_TYPES}/import/openapi", json={"spec": OPENAPI}), 200)

    assert sorted(answer["data"]["modified"]) == ["invoice.paid", "invoice.voided"]
    paid = expect(client.get(f"{EVENT_TYPES}/invoice.paid"), 200)
    voided = expect(client.get(f"{EVENT_TYPES}/invoice.voided"), 200)
    assert paid["description"] == "An invoice was paid"
    assert paid["groupName"] == "billing"
    assert paid["schemas"] == {"1": {"type": "object", "properties": {"id": {"type": "integer"}}}}
    assert (voided["deprecated"], voided["schemas"]["1"]["examples"]) == (True, [{"invoice": 7}])


def test_import_dry_run_changes_nothing(client: TestClient) -> None:
    answer = expect(client.post(f"{EVENT_TYPES}/import/openapi", json={"spec": OPENAPI, "dryRun": True}), 200)

    assert {item["name"] for item in answer["data"]["to_modify"]} == {"invoice.paid", "invoice.voided"}
    assert client.get(f"{EVENT_TYPES}/invoice.paid").status_code == 404


def test_import_yaml_with_replace_all_archives_the_rest(client: TestClient) -> None:
    other = create(client)["name"]
    raw = "openapi: 3.1.0\nwebhooks:\n  order.shipped:\n    post:\n      summary: Shipped\n"

    expect(client.post(f"{EVENT_TYPES}/import/openapi", json={"specRaw": raw, "replaceAll": True}), 200)

    assert expect(client.get(f"{EVENT_TYPES}/order.shipped"), 200)["description"] == "Shipped"
    assert expect(client.get(f"{EVENT_TYPES}/{other}"), 200)["archived"] is True


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "exactly one of spec and specRaw"),
        ({"specRaw": "webhooks: [unclosed"}, "neither JSON nor YAML"),
        ({"spec": {"openapi": "3.0.0", "paths": {}}}, "no webhooks"),
        ({"spec": {"webhooks": {"x": {"post": {"requestBody": {"$ref": "#/nowhere"}}}}}}, "points at nothing"),
        ({"spec": {"webhooks": {"in voice": {"post": {}}}}}, "name: String should match pattern"),
        ({"spec": {"webhooks": {"a": {"post": {"x-svix-group-name": "a b"}}}}}, "group_name: String should match"),
        (
            {
                "spec": {
                    "webhooks": {
                        "a": {"post": {"requestBody": {"content": {"application/json": {"schema": {"type": 3}}}}}}
                    }
                }
            },
            "not a valid JSON Schema",
        ),
    ],
)
def test_import_refuses_what_it_cannot_read(client: TestClient, body: Json, says: str) -> None:
    response = client.post(f"{EVENT_TYPES}/import/openapi", json=body)

    assert response.status_code == 422, response.text
    assert says in response.json()["detail"][0]["msg"]


def test_export_is_what_import_reads(client: TestClient) -> None:
    expect(client.post(f"{EVENT_TYPES}/import/openapi", json={"spec": OPENAPI}), 200)
    exported = expect(client.get(f"{EVENT_TYPES}/export/openapi"), 200)
    assert set(exported["webhooks"]) == {"invoice.paid", "invoice.voided"}

    for name in ("invoice.paid", "invoice.voided"):
        client.delete(f"{EVENT_TYPES}/{name}", params={"expunge": "true"})
    expect(client.post(f"{EVENT_TYPES}/import/openapi", json={"specRaw": json.dumps(exported)}), 200)

    paid = expect(client.get(f"{EVENT_TYPES}/invoice.paid"), 200)
    assert (paid["groupName"], paid["schemas"]["1"]["properties"]) == ("billing", {"id": {"type": "integer"}})
    assert expect(client.get(f"{EVENT_TYPES}/invoice.voided"), 200)["deprecated"] is True


def test_the_older_single_feature_flag_is_read_as_feature_flags(client: TestClient) -> None:
    made = create(client, featureFlag="beta")
    patched = expect(client.patch(f"{EVENT_TYPES}/{made['name']}", json={"featureFlag": "ga"}), 200)
    both = client.patch(f"{EVENT_TYPES}/{made['name']}", json={"featureFlag": "x", "featureFlags": ["y"]})

    assert (made["featureFlags"], made["featureFlag"]) == (["beta"], "beta")
    assert patched["featureFlags"] == ["ga"]
    assert both.status_code == 422


def _doubling_chain(levels: int) -> Json:
    """Schema n refers twice to schema n+1: 18 levels inline to 2**18 leaves (5.4 s of CPU unbounded)."""
    schemas: dict[str, Json] = {f"s{levels}": {"type": "string"}}
    for n in range(levels):
        twice = {"$ref": f"#/components/schemas/s{n + 1}"}
        schemas[f"s{n}"] = {"type": "object", "properties": {"a": twice, "b": twice}}
    body = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/s0"}}}}
    return {
        "openapi": "3.1.0",
        "components": {"schemas": schemas},
        "webhooks": {"chain": {"post": {"requestBody": body}}},
    }


def test_import_is_bounded_in_total_work_not_only_depth(client: TestClient) -> None:
    response = client.post(f"{EVENT_TYPES}/import/openapi", json={"spec": _doubling_chain(18), "dryRun": True})

    assert response.status_code == 422, response.text
    assert "with their $refs inlined, exceed 100000 nodes" in response.json()["detail"][0]["msg"]
    # A chain inside the bound still imports.
    expect(client.post(f"{EVENT_TYPES}/import/openapi", json={"spec": _doubling_chain(4)}), 200)
