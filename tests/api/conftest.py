"""Factories over the in-memory ``client`` (tests/conftest.py): each makes one thing through
the public API and fails loudly if the API refuses."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import Json, MakeApp, MakeEndpoint, SendMessage, declare_event_types, expect, unique


@pytest.fixture
def make_app(client: TestClient) -> MakeApp:
    def make(**fields: Any) -> Json:
        return expect(client.post("/api/v1/app", json={"name": unique("app"), **fields}), 201)

    return make


@pytest.fixture
def app_id(make_app: MakeApp) -> str:
    app_id: str = make_app()["id"]
    return app_id


@pytest.fixture
def make_endpoint(client: TestClient, app_id: str) -> MakeEndpoint:
    def make(app: str | None = None, **fields: Any) -> Json:
        body = {"url": f"https://127.0.0.1:9/{unique('hook')}", **fields}
        declare_event_types(client, *(fields.get("eventTypes") or []))
        return expect(client.post(f"/api/v1/app/{app or app_id}/endpoint", json=body), 201)

    return make


@pytest.fixture
def send(client: TestClient, app_id: str) -> SendMessage:
    def send_message(
        event_type: str = "user.created", payload: Json | None = None, app: str | None = None, **fields: Any
    ) -> Json:
        body = {"eventType": event_type, "payload": payload if payload is not None else {"n": 1}, **fields}
        return expect(client.post(f"/api/v1/app/{app or app_id}/msg", json=body), 202)

    return send_message
