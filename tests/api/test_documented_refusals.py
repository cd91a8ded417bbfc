"""Found by the wider fuzzing run (seed 42, PostgreSQL): values the database refuses (a NUL) that
the document allowed. Message ids and event type names in a request follow the name rule, said
in the document and refused by validation, naming the field."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from tests.api.helpers import expect, without_auth


def _document(client: TestClient) -> dict[str, Any]:
    return expect(without_auth(client, "get", "/openapi.json"), 200)


def test_bulk_expunge_ids_are_names_in_the_document_and_the_server(client: TestClient, app_id: str) -> None:
    ids = ["msg\x00x"]
    schema = _document(client)["components"]["schemas"]["BulkExpungeIn"]["properties"]["ids"]

    response = client.post(f"/api/v1/app/{app_id}/msg/bulk-expunge", json={"ids": ids})

    assert not Draft202012Validator(schema).is_valid(ids)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "ids", "0"]


def test_event_type_filters_are_names_in_the_document_and_the_server(client: TestClient, app_id: str) -> None:
    document = _document(client)
    filtered = [
        path
        for path, operations in document["paths"].items()
        for parameter in operations.get("get", {}).get("parameters", [])
        if parameter["name"] == "event_types"
    ]
    assert len(filtered) == 4, filtered
    for path in filtered:
        get = document["paths"][path]["get"]
        (parameter,) = [parameter for parameter in get["parameters"] if parameter["name"] == "event_types"]
        (array,) = [branch for branch in parameter["schema"]["anyOf"] if branch["type"] == "array"]
        assert array["items"]["pattern"] == "^[a-zA-Z0-9\\-_.,]+$", path  # names, or names joined by commas

    response = client.get(f"/api/v1/app/{app_id}/msg", params={"event_types": ["ok", "a\x00b"]})

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "event_types", "1"]
