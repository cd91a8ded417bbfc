"""The OpenAPI document describes the API and nothing else: pages are not operations."""

from fastapi.testclient import TestClient


def test_the_document_holds_only_api_paths(client: TestClient) -> None:
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]

    assert paths
    assert [path for path in paths if not path.startswith("/api/")] == []
