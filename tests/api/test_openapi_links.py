"""Every OpenAPI link leads somewhere real: a stateful client (schemathesis's stateful phase)
follows them from a create to the operations on what it created."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.helpers import expect, without_auth


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _links(document: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
    """(source path, method, status, the response, the link) for every link in the document."""
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                for link in response.get("links", {}).values():
                    found.append((path, method, status, response, link))
    return found


def test_every_link_takes_its_values_from_fields_that_exist(client: TestClient) -> None:
    document = expect(without_auth(client, "get", "/openapi.json"), 200)
    links = _links(document)

    assert links
    for path, method, status, response, link in links:
        where = f"{method.upper()} {path} {status} -> {link['operationRef']}"
        target = _resolve(document, {"$ref": link["operationRef"]})
        body = _resolve(document, response["content"]["application/json"]["schema"])
        source_parameters = {
            parameter["name"]
            for parameter in document["paths"][path][method].get("parameters", [])
            if parameter["in"] == "path"
        }
        wanted = {parameter["name"] for parameter in target.get("parameters", []) if parameter["in"] == "path"}
        assert set(link["parameters"]) == wanted, where
        for expression in link["parameters"].values():
            if expression.startswith("$response.body#/"):
                assert expression.removeprefix("$response.body#/") in body["properties"], (where, expression)
            else:
                assert expression.removeprefix("$request.path.") in source_parameters, (where, expression)


def test_event_type_links_use_the_name(client: TestClient) -> None:
    document = expect(without_auth(client, "get", "/openapi.json"), 200)
    created = document["paths"]["/api/v1/event-type"]["post"]["responses"]["201"]

    get = created["links"]["GET /api/v1/event-type/{event_type_name}"]
    assert get["parameters"] == {"event_type_name": "$response.body#/name"}
