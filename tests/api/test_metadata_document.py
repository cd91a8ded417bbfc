"""The OpenAPI document says exactly which metadata the server accepts: a client (or a
fuzzer) that follows the document is never refused, and is told of every refusal."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from tests.api.helpers import expect

URL = "https://example.com/hook"
SCHEMAS_WITH_METADATA = ["ApplicationIn", "ApplicationPatch", "EndpointIn", "EndpointUpdate", "EndpointPatch"]

SAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("plain", {"team": "billing", "": ""}),
    ("nul-in-key", {"k\x00": "v"}),
    ("nul-in-value", {"k": "v\x00"}),
    ("not-a-string", {"k": 1}),
    ("64-entries", {f"k{index}": "v" for index in range(64)}),
    ("65-entries", {f"k{index}": "v" for index in range(65)}),
]


def _metadata_schemas(client: TestClient) -> dict[str, Any]:
    schemas = expect(client.get("/openapi.json"), 200)["components"]["schemas"]
    return {name: schemas[name]["properties"]["metadata"] for name in SCHEMAS_WITH_METADATA}


def test_every_request_schema_states_metadata_by_the_one_definition(client: TestClient) -> None:
    metadata = _metadata_schemas(client)

    first = metadata["ApplicationIn"]
    assert first["propertyNames"] == {"pattern": "^[^\\x00]*$"}
    assert "patternProperties" not in first  # which would let a key that does not match through
    assert all(schema == first for schema in metadata.values()), metadata


@pytest.mark.parametrize(("sample", "value"), SAMPLES, ids=[name for name, _ in SAMPLES])
def test_the_document_accepts_exactly_what_the_server_does(
    client: TestClient, app_id: str, sample: str, value: dict[str, Any]
) -> None:
    document = Draft202012Validator(_metadata_schemas(client)["ApplicationIn"])
    answers = [
        client.post("/api/v1/app", json={"name": "m", "metadata": value}),
        client.patch(f"/api/v1/app/{app_id}", json={"metadata": value}),
        client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": URL, "metadata": value}),
    ]

    for response in answers:
        assert response.status_code in (200, 201, 422), response.text
        assert (response.status_code != 422) == document.is_valid(value), (sample, response.text)
