"""The background task list and its filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from tests.api.helpers import MakeEndpoint, expect

APPS = "/api/v1/app"


def listed(client: TestClient, url: str, **params: object) -> list[str]:
    return [item["id"] for item in expect(client.get(url, params=params), 200)["data"]]


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def test_background_task_list_with_filters(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint()["id"]
    since = iso(datetime.now(UTC) - timedelta(hours=1))
    started = [
        expect(client.post(f"{APPS}/{app_id}/endpoint/{endpoint}/recover", json={"since": since}), 202)["id"]
        for _ in range(2)
    ]

    assert listed(client, "/api/v1/background-task") == started[::-1]
    assert listed(client, "/api/v1/background-task", order="ascending") == started
    assert listed(client, "/api/v1/background-task", task="endpoint.recover", status="running") == started[::-1]
    assert listed(client, "/api/v1/background-task", status="finished") == []
    assert listed(client, "/api/v1/background-task", task="endpoint.replay") == []
