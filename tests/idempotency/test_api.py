"""An idempotency-key on every POST: the first answer replayed for the same request, a 409
for another body under the same key, per URL."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.helpers import MakeApp, expect, unique

APPS = "/api/v1/app"


def listed(client: TestClient, url: str, **params: object) -> list[str]:
    return [item["id"] for item in expect(client.get(url, params=params), 200)["data"]]


def test_idempotency_key_on_application_create(client: TestClient) -> None:
    key = unique("idem")
    body = {"name": "Once", "uid": unique("once")}

    first = client.post(APPS, json=body, headers={"idempotency-key": key})
    again = client.post(APPS, json=body, headers={"idempotency-key": key})

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    # Were it run again, the uid would now be taken: 409.
    assert client.post(APPS, json=body).status_code == 409


def test_idempotency_key_with_another_body_is_409(client: TestClient) -> None:
    key = unique("idem")
    assert client.post(APPS, json={"name": "First"}, headers={"idempotency-key": key}).status_code == 201

    other = client.post(APPS, json={"name": "Second"}, headers={"idempotency-key": key})

    assert other.status_code == 409
    assert other.json()["code"] == "conflict"
    assert "idempotency-key" in other.json()["detail"]
    assert [app["name"] for app in expect(client.get(APPS), 200)["data"]] == ["First"]


def test_idempotency_key_is_per_url(client: TestClient, app_id: str, make_app: MakeApp) -> None:
    key = unique("idem")
    other_app = make_app()["id"]
    body = {"url": "https://127.0.0.1:9/a"}

    first = expect(client.post(f"{APPS}/{app_id}/endpoint", json=body, headers={"idempotency-key": key}), 201)
    second = expect(client.post(f"{APPS}/{other_app}/endpoint", json=body, headers={"idempotency-key": key}), 201)
    again = expect(client.post(f"{APPS}/{app_id}/endpoint", json=body, headers={"idempotency-key": key}), 201)

    assert first["id"] != second["id"]
    assert again == first
    assert len(listed(client, f"{APPS}/{app_id}/endpoint")) == 1


def test_idempotency_key_replays_a_refusal_too(client: TestClient) -> None:
    key = unique("idem")

    first = client.post(APPS, json={"name": ""}, headers={"idempotency-key": key})
    again = client.post(APPS, json={"name": ""}, headers={"idempotency-key": key})

    assert (first.status_code, again.status_code) == (422, 422)
    assert again.json() == first.json()


def test_idempotency_key_too_long_is_422(client: TestClient) -> None:
    response = client.post(APPS, json={"name": "x"}, headers={"idempotency-key": "k" * 257})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "idempotency-key"]
