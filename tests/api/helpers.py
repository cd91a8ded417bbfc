"""Small helpers for the in-memory API tests."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import httpx
from fastapi.testclient import TestClient

Json = dict[str, Any]
# The factory fixtures of tests/api/conftest.py.
MakeApp = Callable[..., Json]
MakeEndpoint = Callable[..., Json]
SendMessage = Callable[..., Json]


def expect(response: httpx.Response, status: int) -> Json:
    """The JSON body, after checking the status (the body is in the failure message)."""
    assert response.status_code == status, response.text
    body: Json = response.json()
    return body


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def without_auth(client: TestClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """The same request, minus the client's default bearer token."""
    request = client.build_request(method, url, **kwargs)
    del request.headers["authorization"]
    response: httpx.Response = client.send(request)
    return response


def walk(client: TestClient, url: str, *, limit: int, **params: Any) -> list[Json]:
    """Every page of a list, following ``iterator`` until ``done``."""
    pages: list[Json] = []
    iterator: str | None = None
    for _ in range(100):
        query = {"limit": limit, **params} | ({"iterator": iterator} if iterator else {})
        page = expect(client.get(url, params=query), 200)
        pages.append(page)
        if page["done"]:
            return pages
        iterator = page["iterator"]
        assert iterator, f"not done, but no iterator: {page}"
    raise AssertionError("pagination never reached done")


def declare_event_types(client: TestClient, *names: str) -> None:
    """Put the event types in the catalogue: an endpoint may filter only on known ones."""
    for name in names:
        response = client.put(f"/api/v1/event-type/{name}", json={"description": name})
        assert response.status_code in {200, 201}, response.text
