"""Hostile or careless input: every case a clear 4xx in the error shape, never a 500,
never a silent change of what was sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from hookpost.app import create_app
from hookpost.kit.validation import MAX_PAYLOAD_DEPTH
from hookpost.settings import Settings
from tests.api.helpers import MakeApp, MakeEndpoint, SendMessage, expect, without_auth
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import fresh_postgres_database, upgrade_to_head


def _nested(depth: int) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    for _ in range(depth - 1):
        payload = {"a": payload}
    return payload


def _post_raw(client: TestClient, url: str, body: bytes | str) -> Any:
    content = body.encode() if isinstance(body, str) else body
    return client.post(url, content=content, headers={"content-type": "application/json"})


def _assert_validation(response: Any, *mentions: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation"
    assert isinstance(body["detail"], list)
    assert body["detail"]
    text = json.dumps(body)
    for mention in mentions:
        assert mention in text, text


@pytest.mark.parametrize(
    ("raw_payload", "mention"),
    [
        ('{"s": "\\ud800"}', "surrogate"),
        ('{"s": "ok \\udfff end"}', "surrogate"),
        ('{"n": NaN}', "NaN"),
        ('{"n": Infinity}', "NaN"),
        ('{"n": -Infinity}', "NaN"),
        ('{"n": 1e400}', "NaN"),
    ],
)
def test_a_payload_the_database_or_json_cannot_hold_is_422(
    client: TestClient, app_id: str, raw_payload: str, mention: str
) -> None:
    body = '{"eventType": "user.created", "payload": ' + raw_payload + "}"

    _assert_validation(_post_raw(client, f"/api/v1/app/{app_id}/msg", body), mention)

    assert expect(client.get(f"/api/v1/app/{app_id}/msg"), 200)["data"] == []


def test_a_payload_nested_past_the_limit_is_422_naming_it(client: TestClient, app_id: str, send: SendMessage) -> None:
    response = client.post(
        f"/api/v1/app/{app_id}/msg", json={"eventType": "a", "payload": _nested(MAX_PAYLOAD_DEPTH + 1)}
    )
    _assert_validation(response, str(MAX_PAYLOAD_DEPTH))

    # At the limit it is stored, and reads back on every page that includes it.
    deepest = send(payload=_nested(MAX_PAYLOAD_DEPTH))
    assert expect(client.get(f"/api/v1/app/{app_id}/msg/{deepest['id']}"), 200)["payload"] == _nested(MAX_PAYLOAD_DEPTH)
    assert len(expect(client.get(f"/api/v1/app/{app_id}/msg"), 200)["data"]) == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"eventType": "a", "payload": {"s": "\xff\xfe"}}',  # invalid UTF-8
        b'{"eventType": "a", "payload": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # past the parser's recursion
        b'{"eventType": "a", "payload": {"n": ' + b"9" * 5000 + b"}}",  # an integer too long to convert
        b'{"eventType": "a", "payload": {"n": 1,}}',
    ],
    ids=["invalid-utf8", "nested-5000", "huge-integer", "trailing-comma"],
)
def test_every_unparseable_body_is_the_same_422(client: TestClient, app_id: str, body: bytes) -> None:
    response = _post_raw(client, f"/api/v1/app/{app_id}/msg", body)

    _assert_validation(response, "json_invalid")
    assert response.json()["detail"][0]["loc"][0] == "body"


@pytest.mark.parametrize("body", [b"{bad json", b'{"name": "\xff"}', b"[" * 5000])
def test_an_unauthenticated_body_is_401_before_it_is_parsed(client: TestClient, body: bytes) -> None:
    for url in ("/api/v1/app", "/api/v1/app/nope/msg"):
        response = without_auth(client, "post", url, content=body, headers={"content-type": "application/json"})

        assert response.status_code == 401, response.text
        assert response.json()["code"] == "authentication_failed"


@pytest.mark.parametrize("query", [{"before": "0.5"}, {"after": "-1"}, {"before": "1700000000"}, {"after": "1e9"}])
def test_a_time_filter_must_be_an_iso_date_time(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, query: dict[str, str]
) -> None:
    endpoint = make_endpoint()
    _assert_validation(client.get(f"/api/v1/app/{app_id}/msg", params=query), "ISO 8601")
    _assert_validation(client.get(f"/api/v1/app/{app_id}/attempt/endpoint/{endpoint['id']}", params=query), "ISO 8601")


def test_an_iso_time_filter_works(client: TestClient, app_id: str, send: SendMessage) -> None:
    send()
    assert len(expect(client.get(f"/api/v1/app/{app_id}/msg", params={"after": "2000-01-01T00:00:00Z"}), 200)["data"])


def test_booleans_are_not_numbers(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint()
    base = f"/api/v1/app/{app_id}/endpoint/{endpoint['id']}"

    _assert_validation(client.post(f"{base}/secret/rotate", json={"gracePeriodSeconds": False}))
    _assert_validation(client.post("/api/v1/app", json={"name": "x", "throttleRate": True}))
    _assert_validation(client.patch(base, json={"disabled": 0}))
    assert expect(client.post(f"{base}/secret/rotate", json={"gracePeriodSeconds": 0}), 200)["key"]


def test_recover_until_before_since_is_refused(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint()
    url = f"/api/v1/app/{app_id}/endpoint/{endpoint['id']}/recover"

    _assert_validation(
        client.post(url, json={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}), "until"
    )
    _assert_validation(client.post(url, json={"since": 1700000000}), "ISO 8601")


@pytest.mark.parametrize("value", ["a\u2028b", "a\u0085b", "nul\x00", "é", "line\nbreak", "bell\x07"])
def test_a_header_value_that_cannot_go_on_the_wire_is_refused(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, value: str
) -> None:
    endpoint = make_endpoint()
    base = f"/api/v1/app/{app_id}/endpoint"

    _assert_validation(client.post(base, json={"url": "https://example.com/h", "headers": {"X-Custom": value}}))
    _assert_validation(client.put(f"{base}/{endpoint['id']}/headers", json={"headers": {"X-Custom": value}}))
    _assert_validation(client.patch(f"{base}/{endpoint['id']}/headers", json={"headers": {"X-Custom": value}}))
    assert expect(client.get(f"{base}/{endpoint['id']}/headers"), 200)["headers"] == {}


def test_a_header_name_outside_the_published_pattern_is_refused(client: TestClient, app_id: str) -> None:
    spec = expect(client.get("/openapi.json"), 200)
    headers = spec["components"]["schemas"]["EndpointIn"]["properties"]["headers"]
    assert headers["propertyNames"]["pattern"]
    assert headers["additionalProperties"] is False
    url = spec["components"]["schemas"]["EndpointIn"]["properties"]["url"]
    assert url["format"] == "uri"

    for name in ("X Space", "X:Colon", "Ünicode", ""):
        response = client.post(
            f"/api/v1/app/{app_id}/endpoint", json={"url": "https://example.com/h", "headers": {name: "v"}}
        )
        _assert_validation(response)


@pytest.mark.parametrize(
    "body",
    [
        '{"metadata": null}',
        '{"name": null}',
        '{"name": "nul\\u0000name"}',
        '{"name": "\\ud800"}',
        '{"metadata": {"k": "a\\u0000"}}',
        '{"metadata": {"\\udc00": "v"}}',
    ],
)
def test_patch_application_with_null_or_nul_is_422(client: TestClient, make_app: MakeApp, body: str) -> None:
    application = make_app(metadata={"k": "v"})

    response = client.patch(
        f"/api/v1/app/{application['id']}", content=body.encode(), headers={"content-type": "application/json"}
    )

    _assert_validation(response)

    assert expect(client.get(f"/api/v1/app/{application['id']}"), 200)["metadata"] == {"k": "v"}


def test_patch_application_leaves_out_what_is_not_sent(client: TestClient, make_app: MakeApp) -> None:
    application = make_app(metadata={"k": "v"}, throttleRate=5)

    patched = expect(client.patch(f"/api/v1/app/{application['id']}", json={"throttleRate": None}), 200)

    assert patched["metadata"] == {"k": "v"}
    assert patched["name"] == application["name"]
    assert patched["throttleRate"] is None


@pytest.mark.parametrize("body", [{"url": None}, {"description": None}, {"disabled": None}, {"metadata": None}])
def test_patch_endpoint_with_null_where_it_cannot_be_is_422(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, body: dict[str, Any]
) -> None:
    endpoint = make_endpoint()

    _assert_validation(client.patch(f"/api/v1/app/{app_id}/endpoint/{endpoint['id']}", json=body))


def test_credentials_in_an_endpoint_url_are_never_shown(client: TestClient, app_id: str) -> None:
    url = "https://user:hunter2@example.com/hook"
    base = f"/api/v1/app/{app_id}/endpoint"

    created = expect(client.post(base, json={"url": url}), 201)
    responses = [
        created,
        expect(client.get(f"{base}/{created['id']}"), 200),
        expect(client.get(base), 200),
        expect(client.patch(f"{base}/{created['id']}", json={"description": "d"}), 200),
    ]

    for response in responses:
        assert "hunter2" not in json.dumps(response)
    assert created["url"] == "https://user:***@example.com/hook"


def test_options_and_405_name_every_method_of_the_path(client: TestClient, app_id: str) -> None:
    for method, path, allowed in [
        ("OPTIONS", f"/api/v1/app/{app_id}", "DELETE, GET, HEAD, PATCH, PUT"),
        ("POST", f"/api/v1/app/{app_id}", "DELETE, GET, HEAD, PATCH, PUT"),
        ("DELETE", "/api/v1/app", "GET, HEAD, POST"),
        ("OPTIONS", f"/api/v1/app/{app_id}/endpoint/e/headers", "GET, HEAD, PATCH, PUT"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 405, (method, path, response.text)
        assert response.headers["allow"] == allowed
        assert response.json()["code"] == "method_not_allowed"


def test_a_response_that_fails_to_serialise_is_500_in_the_error_shape(settings: Settings) -> None:
    app = create_app(settings)

    class Strict(BaseModel):
        number: int

    @app.get("/broken", response_model=Strict)
    async def broken() -> Any:
        return {"number": "not a number"}

    with TestClient(app) as client:  # raise_server_exceptions: nothing may escape the app
        response = client.get("/broken", headers={"x-request-id": "req-broken"})

    assert response.status_code == 500
    assert response.json() == {"code": "internal_error", "detail": "Internal server error (request id req-broken)"}
    assert response.headers["x-request-id"] == "req-broken"


def test_errors_are_documented_in_the_openapi_document(client: TestClient) -> None:
    spec = expect(client.get("/openapi.json"), 200)
    operation = spec["paths"]["/api/v1/app/{app_id}/msg"]["post"]

    assert "503" in operation["responses"]
    assert "Retry-After" in operation["responses"]["503"]["headers"]
    assert str(MAX_PAYLOAD_DEPTH) in json.dumps(spec["components"]["schemas"]["MessageIn"])


def test_create_operations_link_to_what_they_created(client: TestClient) -> None:
    spec = expect(client.get("/openapi.json"), 200)
    links = spec["paths"]["/api/v1/app/{app_id}/endpoint"]["post"]["responses"]["201"]["links"]

    link = links["GET /api/v1/app/{app_id}/endpoint/{endpoint_id}"]
    assert link["parameters"] == {"app_id": "$request.path.app_id", "endpoint_id": "$response.body#/id"}
    assert link["operationRef"] == "#/paths/~1api~1v1~1app~1{app_id}~1endpoint~1{endpoint_id}/get"
    assert "POST /api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate" in links


@pytest.mark.postgres
def test_nul_anywhere_in_a_request_is_4xx_on_postgres(tmp_path: Path) -> None:
    """PostgreSQL refuses NUL in text: whatever field carries one, the answer is a 4xx."""
    with fresh_postgres_database() as url:
        settings = make_settings(tmp_path, database_url=url)
        upgrade_to_head(settings)
        with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
            app_id = expect(client.post("/api/v1/app", json={"name": "nul"}), 201)["id"]
            requests: list[tuple[str, str, dict[str, Any] | None]] = [
                ("GET", "/api/v1/app/a%00b", None),
                ("GET", f"/api/v1/app/{app_id}/msg/m%00", None),
                ("GET", f"/api/v1/app/{app_id}/endpoint/e%00", None),
                ("GET", f"/api/v1/app/{app_id}/msg?iterator=a%00", None),
                ("GET", f"/api/v1/app/{app_id}/msg?event_types=a%00", None),
                ("GET", "/api/v1/background-task/t%00", None),
                ("PUT", "/api/v1/app/u%00", {"name": "x"}),
                ("POST", f"/api/v1/app/{app_id}%00/msg", {"eventType": "a", "payload": {}}),
            ]
            for method, url_path, body in requests:
                response = client.request(method, url_path, json=body)
                assert response.status_code in (404, 422), (method, url_path, response.text)
                assert response.json()["code"] in ("not_found", "validation")
