"""POST .../msg's shortcut (``messages.hot_route``) answers as FastAPI's route does.

The same message is sent once the common way (the shortcut takes it) and once with a query
parameter (FastAPI's route takes it): status, headers and body are alike but for the id and
the time; a body that does not validate gets FastAPI's own 422 either way.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.observability.test_metrics import scrape, value

BODY = {"eventType": "user.created", "payload": {"é": [1, 2.5, None, True], "n": {"x": "y"}}, "tags": ["t"]}
ROUTE = "/api/v1/app/{app_id}/msg"


def _comparable(answer: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in answer.items() if key not in ("id", "timestamp")}


def test_the_shortcut_answers_as_the_route(client: TestClient, app_id: str) -> None:
    hot = client.post(f"/api/v1/app/{app_id}/msg", json=BODY)
    routed = client.post(f"/api/v1/app/{app_id}/msg", params={"with_content": "true"}, json=BODY)

    assert hot.status_code == routed.status_code == 202
    assert hot.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert _comparable(hot.json()) == _comparable(routed.json())
    assert list(hot.json()) == list(routed.json())  # the same keys in the same order
    assert hot.content.replace(hot.json()["id"].encode(), b"").replace(
        hot.json()["timestamp"].encode(), b""
    ) == routed.content.replace(routed.json()["id"].encode(), b"").replace(routed.json()["timestamp"].encode(), b"")
    assert "x-request-id" in hot.headers


def test_a_body_the_shortcut_refuses_gets_the_routes_422(client: TestClient, app_id: str) -> None:
    for body in (b'{"eventType": "e"}', b"{not json", b'{"eventType": "e", "payload": {"x": NaN}}'):
        hot = client.post(f"/api/v1/app/{app_id}/msg", content=body, headers={"content-type": "application/json"})
        routed = client.post(
            f"/api/v1/app/{app_id}/msg?with_content=true", content=body, headers={"content-type": "application/json"}
        )

        assert hot.status_code == routed.status_code == 422
        assert hot.json() == routed.json()


def test_an_unknown_application_is_a_404_on_the_shortcut(client: TestClient) -> None:
    answer = client.post("/api/v1/app/app_none/msg", json=BODY)

    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"


def test_the_shortcut_is_counted_under_the_routes_template(client: TestClient, app_id: str) -> None:
    before = value(scrape(client), "hookpost_http_requests_total", method="POST", route=ROUTE, status="202")

    for _ in range(3):
        assert client.post(f"/api/v1/app/{app_id}/msg", json=BODY).status_code == 202

    after = value(scrape(client), "hookpost_http_requests_total", method="POST", route=ROUTE, status="202")
    assert after - before == 3
