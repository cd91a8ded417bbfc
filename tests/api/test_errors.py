"""Authentication, the error shape, health, and the OpenAPI document."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hookpost.app import create_app
from hookpost.settings import Settings
from tests.api.helpers import expect, without_auth
from tests.conftest import ADMIN_TOKEN

# Every operation of the API, as a Svix client expects to find it.
OPERATIONS = {
    ("get", "/api/v1/health"),
    ("get", "/api/v1/app"),
    ("post", "/api/v1/app"),
    ("get", "/api/v1/app/{app_id}"),
    ("put", "/api/v1/app/{app_id}"),
    ("patch", "/api/v1/app/{app_id}"),
    ("delete", "/api/v1/app/{app_id}"),
    ("get", "/api/v1/app/{app_id}/endpoint"),
    ("post", "/api/v1/app/{app_id}/endpoint"),
    ("get", "/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
    ("put", "/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
    ("patch", "/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
    ("delete", "/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
    ("get", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret"),
    ("post", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate"),
    ("get", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers"),
    ("put", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers"),
    ("patch", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers"),
    ("get", "/api/v1/app/{app_id}/msg"),
    ("post", "/api/v1/app/{app_id}/msg"),
    ("get", "/api/v1/app/{app_id}/msg/{msg_id}"),
    ("get", "/api/v1/app/{app_id}/msg/{msg_id}/endpoint"),
    ("post", "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend"),
    ("get", "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}"),
    ("get", "/api/v1/app/{app_id}/attempt/msg/{msg_id}"),
    ("get", "/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}"),
    ("post", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover"),
    ("get", "/api/v1/background-task/{task_id}"),
    ("get", "/api/v1/health/ping"),
    ("post", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example"),
    ("get", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats"),
    ("get", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/msg"),
    ("delete", "/api/v1/app/{app_id}/msg/{msg_id}/content"),
    ("delete", "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}/content"),
    ("get", "/api/v1/event-type"),
    ("post", "/api/v1/event-type"),
    ("get", "/api/v1/event-type/{event_type_name}"),
    ("put", "/api/v1/event-type/{event_type_name}"),
    ("patch", "/api/v1/event-type/{event_type_name}"),
    ("delete", "/api/v1/event-type/{event_type_name}"),
    ("post", "/api/v1/event-type/import/openapi"),
    ("get", "/api/v1/event-type/export/openapi"),
    ("post", "/api/v1/auth/app-portal-access/{app_id}"),
    ("post", "/api/v1/auth/logout"),
}

# Errors an operation can answer with beyond 401 and 422, which every secured one documents.
SPECIFIC_ERRORS = {
    ("post", "/api/v1/app"): {"409"},
    ("put", "/api/v1/app/{app_id}"): {"404", "409"},
    ("patch", "/api/v1/app/{app_id}"): {"404", "409"},
    ("post", "/api/v1/app/{app_id}/endpoint"): {"404", "409"},
    ("put", "/api/v1/app/{app_id}/endpoint/{endpoint_id}"): {"404", "409"},
    ("patch", "/api/v1/app/{app_id}/endpoint/{endpoint_id}"): {"404", "409"},
    ("post", "/api/v1/app/{app_id}/msg"): {"404", "413"},
}

SECURED = sorted(OPERATIONS - {("get", "/api/v1/health"), ("get", "/api/v1/health/ping")})


def concrete(path: str) -> str:
    return path.format(app_id="a", endpoint_id="e", msg_id="m", attempt_id="t", task_id="q", event_type_name="x")


@pytest.mark.parametrize(("method", "path"), SECURED)
def test_every_secured_route_needs_the_token(client: TestClient, method: str, path: str) -> None:
    """Checked before anything else: an unknown application is 401 too, never 404."""
    json: dict[str, object] | None = {} if method in {"post", "put", "patch"} else None

    response = without_auth(client, method, concrete(path), json=json)

    assert response.status_code == 401
    assert response.json() == {"code": "authentication_failed", "detail": response.json()["detail"]}
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {ADMIN_TOKEN}x",
        f"Bearer {ADMIN_TOKEN[:-1]}",
        "Bearer",
        f"Basic {ADMIN_TOKEN}",
        ADMIN_TOKEN,
        "Bearer é".encode(),
    ],
    # Named, not shown: the token is made anew in each test process, and pytest-xdist needs
    # every process to collect the same test ids.
    ids=["suffixed", "truncated", "empty", "basic-scheme", "no-scheme", "non-ascii"],
)
def test_a_wrong_token_is_401(client: TestClient, authorization: str | bytes) -> None:
    response = client.get("/api/v1/app", headers={"authorization": authorization})

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert response.headers["www-authenticate"] == "Bearer"


def test_the_right_token_in_any_case_of_scheme(client: TestClient) -> None:
    assert client.get("/api/v1/app", headers={"authorization": f"bearer {ADMIN_TOKEN}"}).status_code == 200


def test_health_needs_no_token(client: TestClient) -> None:
    response = without_auth(client, "get", "/api/v1/health")

    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.parametrize("path", ["/nowhere", "/api/v1/nowhere", "/api/v2/app"])
def test_unknown_route_is_404_in_the_error_shape(client: TestClient, path: str) -> None:
    for response in (client.get(path), without_auth(client, "get", path)):
        assert response.status_code == 404
        assert response.json() == {"code": "not_found", "detail": response.json()["detail"]}
        assert isinstance(response.json()["detail"], str)


def test_wrong_method_is_405_in_the_error_shape(client: TestClient) -> None:
    response = client.delete("/api/v1/health")

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("body", [b"{bad json", b"", b'{"name": "x",}', b"\xff\xfe"])
def test_malformed_json_is_422_not_500(client: TestClient, body: bytes) -> None:
    response = client.post("/api/v1/app", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert response.json()["code"] == "validation"
    assert response.json()["detail"][0]["loc"][0] == "body"


def test_json_that_is_not_an_object_is_422(client: TestClient) -> None:
    response = client.post("/api/v1/app", json=["name"])

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]


def test_validation_errors_carry_loc_msg_and_type(client: TestClient) -> None:
    response = client.post("/api/v1/app", json={"name": "", "uid": "bad uid"})

    assert response.status_code == 422
    details = response.json()["detail"]
    assert {tuple(item["loc"]) for item in details} == {("body", "name"), ("body", "uid")}
    for item in details:
        assert set(item) == {"loc", "msg", "type"}
        assert item["msg"]
        assert item["type"]


def test_an_unexpected_error_is_500_without_a_trace(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")

    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert response.json() == {"code": "internal_error", "detail": f"Internal server error (request id {request_id})"}
    assert "secret internals" not in response.text


def test_openapi_lists_every_route(client: TestClient) -> None:
    spec = expect(without_auth(client, "get", "/openapi.json"), 200)

    documented = {(method, path) for path, operations in spec["paths"].items() for method in operations}

    assert not OPERATIONS - documented, sorted(OPERATIONS - documented)


def test_openapi_documents_the_errors_of_each_route(client: TestClient) -> None:
    spec = expect(client.get("/openapi.json"), 200)

    for method, path in SECURED:
        operation = spec["paths"][path][method]
        expected = {"401", "403", "422"} | SPECIFIC_ERRORS.get((method, path), set())
        if "{app_id}" in path:
            expected.add("404")
        assert expected <= set(operation["responses"]), (method, path)
        assert operation["security"] == [{"HTTPBearer": []}], (method, path)
        for code in expected:
            schema = operation["responses"][code]["content"]["application/json"]["schema"]
            assert schema["$ref"].rsplit("/", 1)[-1] in {"ErrorOut", "ValidationErrorOut"}, (method, path, code)


def test_openapi_error_schemas_match_what_is_sent(client: TestClient) -> None:
    schemas = expect(client.get("/openapi.json"), 200)["components"]["schemas"]

    assert set(schemas["ErrorOut"]["properties"]) == {"code", "detail"}
    assert set(schemas["ValidationErrorOut"]["properties"]) == {"code", "detail"}
    item = schemas["ValidationErrorItem"]
    assert set(item["properties"]) == {"loc", "msg", "type"}


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_are_served(client: TestClient, path: str) -> None:
    response = without_auth(client, "get", path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text


@pytest.mark.parametrize("path", ["/api/v1/app", "/api/v1/app/acme/msg"])
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_json_body_without_a_json_content_type_is_told_what_is_missing(
    client: TestClient, path: str, content_type: str | None
) -> None:
    expect(client.post("/api/v1/app", json={"name": "Acme", "uid": "acme"}), 201)
    headers = {} if content_type is None else {"content-type": content_type}
    body = b'{"name": "Acme", "eventType": "invoice.paid", "payload": {}}'

    detail = expect(client.post(path, content=body, headers=headers), 422)["detail"]

    assert detail[0]["loc"] == ["body"]
    assert "Content-Type: application/json" in detail[0]["msg"]
