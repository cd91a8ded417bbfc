"""Endpoints: /api/v1/app/{app_id}/endpoint, their secret and their custom headers."""

from __future__ import annotations

import base64
import secrets

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import MakeApp, MakeEndpoint, declare_event_types, expect, unique


def endpoints(app_id: str) -> str:
    return f"/api/v1/app/{app_id}/endpoint"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def test_create_returns_the_endpoint(client: TestClient, app_id: str) -> None:
    body = {
        "url": "https://127.0.0.1:9/hooks/in",
        "uid": unique("ep"),
        "description": "billing",
        "eventTypes": ["invoice.paid"],
        "channels": ["eu"],
        "throttleRate": 3,
        "metadata": {"team": "x"},
    }
    declare_event_types(client, "invoice.paid")

    endpoint = expect(client.post(endpoints(app_id), json=body), 201)

    assert endpoint["id"].startswith("ep_")
    for field, value in body.items():
        assert endpoint[field] == value, field
    assert endpoint["disabled"] is False
    assert "secret" not in endpoint, "the secret is only read through /secret"


def test_create_defaults(client: TestClient, app_id: str) -> None:
    endpoint = expect(client.post(endpoints(app_id), json={"url": "http://127.0.0.1:9/h"}), 201)

    assert endpoint["uid"] is None
    assert endpoint["description"] == ""
    assert endpoint["eventTypes"] is None
    assert endpoint["channels"] is None
    assert endpoint["metadata"] == {}


def test_create_generates_a_secret(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    first, second = make_endpoint(), make_endpoint()

    keys = [expect(client.get(f"{endpoints(app_id)}/{ep['id']}/secret"), 200)["key"] for ep in (first, second)]

    for key in keys:
        assert key.startswith("whsec_")
        assert len(base64.b64decode(key.removeprefix("whsec_"))) >= 24
    assert keys[0] != keys[1]


def test_create_accepts_a_given_secret(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    secret = new_secret()
    endpoint = make_endpoint(secret=secret)

    assert expect(client.get(f"{endpoints(app_id)}/{endpoint['id']}/secret"), 200) == {"key": secret}


@pytest.mark.parametrize("secret", ["nope", "whsec_short", "whsec_" + "!" * 40])
def test_create_rejects_a_malformed_secret(client: TestClient, app_id: str, secret: str) -> None:
    response = client.post(endpoints(app_id), json={"url": "https://127.0.0.1:9/h", "secret": secret})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "secret"]


@pytest.mark.parametrize("url", ["ftp://x", "not a url", "", "https://"])
def test_create_rejects_an_invalid_url(client: TestClient, app_id: str, url: str) -> None:
    response = client.post(endpoints(app_id), json={"url": url})

    assert response.status_code == 422
    assert response.json()["code"] == "validation"
    assert response.json()["detail"][0]["loc"] == ["body", "url"]
    assert expect(client.get(endpoints(app_id)), 200)["data"] == []


def test_create_requires_a_url(client: TestClient, app_id: str) -> None:
    response = client.post(endpoints(app_id), json={"description": "no url"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "url"]


def test_create_in_an_unknown_application_is_404(client: TestClient) -> None:
    response = client.post(endpoints("no-such-app"), json={"url": "https://127.0.0.1:9/h"})

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_duplicate_uid_in_one_application_conflicts(
    client: TestClient, app_id: str, make_app: MakeApp, make_endpoint: MakeEndpoint
) -> None:
    uid = make_endpoint(uid=unique("dup"))["uid"]

    response = client.post(endpoints(app_id), json={"url": "https://127.0.0.1:9/h", "uid": uid})

    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert len(expect(client.get(endpoints(app_id)), 200)["data"]) == 1
    # Uids are per application.
    other_app = make_app()["id"]
    assert make_endpoint(app=other_app, uid=uid)["uid"] == uid


def test_get_by_id_and_by_uid(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint(uid=unique("get"))

    assert expect(client.get(f"{endpoints(app_id)}/{endpoint['id']}"), 200) == endpoint
    assert expect(client.get(f"{endpoints(app_id)}/{endpoint['uid']}"), 200) == endpoint


def test_get_unknown_is_404(client: TestClient, app_id: str) -> None:
    response = client.get(f"{endpoints(app_id)}/ep_2abcdefghijklmnopqrstu")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_an_endpoint_is_only_reachable_through_its_application(
    client: TestClient, make_app: MakeApp, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(uid=unique("mine"))
    other_app = make_app()["id"]

    for key in (endpoint["id"], endpoint["uid"]):
        assert client.get(f"{endpoints(other_app)}/{key}").status_code == 404
        assert client.get(f"{endpoints(other_app)}/{key}/secret").status_code == 404
        assert client.delete(f"{endpoints(other_app)}/{key}").status_code == 404


def test_list_is_per_application(
    client: TestClient, app_id: str, make_app: MakeApp, make_endpoint: MakeEndpoint
) -> None:
    mine = {make_endpoint()["id"] for _ in range(3)}
    other_app = make_app()["id"]
    make_endpoint(app=other_app)

    page = expect(client.get(endpoints(app_id)), 200)

    assert {endpoint["id"] for endpoint in page["data"]} == mine
    assert page["done"] is True


def test_list_pages(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    made = [make_endpoint()["id"] for _ in range(3)]

    first = expect(client.get(endpoints(app_id), params={"limit": 2}), 200)
    second = expect(client.get(endpoints(app_id), params={"limit": 2, "iterator": first["iterator"]}), 200)

    assert (first["done"], second["done"]) == (False, True)
    assert [ep["id"] for ep in first["data"] + second["data"]] == sorted(made)


def test_list_in_an_unknown_application_is_404(client: TestClient) -> None:
    assert client.get(endpoints("no-such-app")).status_code == 404


def test_put_replaces_the_endpoint(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint(eventTypes=["a"], description="old", metadata={"k": "v"})
    secret = expect(client.get(f"{endpoints(app_id)}/{endpoint['id']}/secret"), 200)["key"]

    updated = expect(
        client.put(f"{endpoints(app_id)}/{endpoint['id']}", json={"url": "https://127.0.0.1:9/new"}),
        200,
    )

    assert updated["id"] == endpoint["id"]
    assert updated["url"] == "https://127.0.0.1:9/new"
    # PUT replaces: what the body leaves out goes back to its default.
    assert (updated["description"], updated["eventTypes"], updated["metadata"]) == ("", None, {})
    assert expect(client.get(f"{endpoints(app_id)}/{endpoint['id']}"), 200) == updated
    assert expect(client.get(f"{endpoints(app_id)}/{endpoint['id']}/secret"), 200)["key"] == secret


def test_put_by_uid_keeps_the_uid(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    """As for applications: addressed by uid, PUT keeps that uid unless the body names
    another, so the same PUT can be repeated."""
    endpoint = make_endpoint(uid=unique("keep"))
    url = f"{endpoints(app_id)}/{endpoint['uid']}"

    first = expect(client.put(url, json={"url": "https://127.0.0.1:9/v2"}), 200)
    second = client.put(url, json={"url": "https://127.0.0.1:9/v3"})

    assert first["uid"] == endpoint["uid"]
    assert second.status_code == 200, second.text
    assert second.json()["id"] == endpoint["id"]


def test_put_creates_an_endpoint_with_the_path_as_uid(client: TestClient, app_id: str) -> None:
    """Svix's PUT on an endpoint is an upsert (the svix client's ``endpoint.upsert``)."""
    uid = unique("upsert")

    response = client.put(f"{endpoints(app_id)}/{uid}", json={"url": "https://127.0.0.1:9/new"})

    assert response.status_code == 201, response.text
    assert response.json()["uid"] == uid
    assert expect(client.get(f"{endpoints(app_id)}/{uid}"), 200)["id"] == response.json()["id"]


def test_put_validates(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint()

    response = client.put(f"{endpoints(app_id)}/{endpoint['id']}", json={"url": "ftp://x"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "url"]


def test_put_unknown_id_is_404(client: TestClient, app_id: str) -> None:
    response = client.put(f"{endpoints(app_id)}/ep_2abcdefghijklmnopqrstu", json={"url": "https://127.0.0.1:9/h"})

    assert response.status_code == 404
    assert expect(client.get(endpoints(app_id)), 200)["data"] == []


def test_patch_changes_event_types_only(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint(uid=unique("patch"), description="kept", eventTypes=["a"])
    declare_event_types(client, "b", "c")

    patched = expect(client.patch(f"{endpoints(app_id)}/{endpoint['uid']}", json={"eventTypes": ["b", "c"]}), 200)

    assert patched["eventTypes"] == ["b", "c"]
    assert (patched["url"], patched["description"], patched["uid"]) == (
        endpoint["url"],
        "kept",
        endpoint["uid"],
    )
    assert expect(client.get(f"{endpoints(app_id)}/{endpoint['id']}"), 200)["eventTypes"] == ["b", "c"]


@pytest.mark.parametrize("event_types", [[], None])
def test_patch_clearing_event_types_means_all(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, event_types: list[str] | None
) -> None:
    endpoint = make_endpoint(eventTypes=["a"])

    patched = expect(client.patch(f"{endpoints(app_id)}/{endpoint['id']}", json={"eventTypes": event_types}), 200)

    assert patched["eventTypes"] is None


def test_patch_disables(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint()

    assert expect(client.patch(f"{endpoints(app_id)}/{endpoint['id']}", json={"disabled": True}), 200)["disabled"]


def test_patch_uid_conflict(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    taken = make_endpoint(uid=unique("taken"))["uid"]
    endpoint = make_endpoint()

    response = client.patch(f"{endpoints(app_id)}/{endpoint['id']}", json={"uid": taken})

    assert response.status_code == 409
    assert response.json()["code"] == "conflict"


@pytest.mark.parametrize(("body", "field"), [({"url": "not a url"}, "url"), ({"eventTypes": ["a b"]}, "eventTypes")])
def test_patch_validates(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, body: dict[str, object], field: str
) -> None:
    endpoint = make_endpoint()

    response = client.patch(f"{endpoints(app_id)}/{endpoint['id']}", json=body)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["body", field]


def test_delete_then_404(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint(uid=unique("gone"))

    response = client.delete(f"{endpoints(app_id)}/{endpoint['uid']}")

    assert response.status_code == 204
    assert client.get(f"{endpoints(app_id)}/{endpoint['id']}").status_code == 404
    assert client.delete(f"{endpoints(app_id)}/{endpoint['id']}").status_code == 404
    assert expect(client.get(endpoints(app_id)), 200)["data"] == []


def test_headers_start_empty(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint()

    assert expect(client.get(f"{endpoints(app_id)}/{endpoint['id']}/headers"), 200) == {
        "headers": {},
        "sensitive": [],
    }


def test_put_headers_hides_sensitive_values(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint()
    url = f"{endpoints(app_id)}/{endpoint['id']}/headers"

    response = client.put(url, json={"headers": {"X-Tenant": "42", "Authorization": "Bearer hunter2"}})

    assert response.status_code == 204
    shown = client.get(url)
    assert shown.json() == {"headers": {"X-Tenant": "42"}, "sensitive": ["Authorization"]}
    assert "hunter2" not in shown.text


def test_put_headers_replaces_them_all(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint(headers={"X-Old": "1"})
    url = f"{endpoints(app_id)}/{endpoint['id']}/headers"
    assert expect(client.get(url), 200)["headers"] == {"X-Old": "1"}

    assert client.put(url, json={"headers": {"X-New": "2"}}).status_code == 204

    assert expect(client.get(url), 200)["headers"] == {"X-New": "2"}


def test_patch_headers_sets_and_deletes(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint(headers={"X-Keep": "1", "X-Drop": "2", "X-Api-Key": "k"})
    url = f"{endpoints(app_id)}/{endpoint['id']}/headers"

    response = client.patch(url, json={"headers": {"x-keep": "changed", "X-Add": "3"}, "deleteHeaders": ["x-drop"]})

    assert response.status_code == 204
    assert expect(client.get(url), 200) == {
        "headers": {"x-keep": "changed", "X-Add": "3"},
        "sensitive": ["X-Api-Key"],
    }


@pytest.mark.parametrize("name", ["webhook-id", "Webhook-Signature", "svix-id", "content-type", "Host"])
def test_reserved_headers_are_refused(client: TestClient, app_id: str, make_endpoint: MakeEndpoint, name: str) -> None:
    endpoint = make_endpoint()
    url = f"{endpoints(app_id)}/{endpoint['id']}/headers"

    for response in (
        client.put(url, json={"headers": {name: "x"}}),
        client.patch(url, json={"headers": {name: "x"}}),
        client.post(endpoints(app_id), json={"url": "https://127.0.0.1:9/h", "headers": {name: "x"}}),
    ):
        assert response.status_code == 422, response.request.method
        assert response.json()["detail"][0]["loc"][:2] == ["body", "headers"]
    assert expect(client.get(url), 200)["headers"] == {}


@pytest.mark.parametrize("headers", [{"X-Bad": "a\r\nInjected: 1"}, {"Bad Name": "x"}])
def test_malformed_headers_are_refused(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, headers: dict[str, str]
) -> None:
    endpoint = make_endpoint()

    response = client.put(f"{endpoints(app_id)}/{endpoint['id']}/headers", json={"headers": headers})

    assert response.status_code == 422


def test_headers_of_an_unknown_endpoint_are_404(client: TestClient, app_id: str) -> None:
    url = f"{endpoints(app_id)}/nope/headers"

    assert client.get(url).status_code == 404
    assert client.put(url, json={"headers": {}}).status_code == 404
    assert client.patch(url, json={"headers": {}}).status_code == 404


def assert_rotated(response: httpx.Response, new_key: str) -> None:
    """Svix's API answers a rotation with 204; the svix 2.x client reads the new key from a
    200 body (see tests/test_svix_client.py). Either is a success; a body is the new key."""
    if response.status_code == 204:
        assert response.content == b""
    else:
        assert response.status_code == 200, response.text
        assert response.json() == {"key": new_key}


def test_rotate_generates_a_new_secret(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint()
    secret_url = f"{endpoints(app_id)}/{endpoint['id']}/secret"
    before = expect(client.get(secret_url), 200)["key"]

    response = client.post(f"{secret_url}/rotate", json={})

    after = expect(client.get(secret_url), 200)["key"]
    assert_rotated(response, after)
    assert after.startswith("whsec_")
    assert after != before


def test_rotate_to_a_given_secret(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint()
    secret_url = f"{endpoints(app_id)}/{endpoint['id']}/secret"
    secret = new_secret()

    response = client.post(f"{secret_url}/rotate", json={"key": secret})

    assert_rotated(response, secret)
    assert expect(client.get(secret_url), 200)["key"] == secret


def test_rotate_rejects_a_malformed_secret(client: TestClient, app_id: str, make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint()
    secret_url = f"{endpoints(app_id)}/{endpoint['id']}/secret"
    before = expect(client.get(secret_url), 200)["key"]

    response = client.post(f"{secret_url}/rotate", json={"key": "not-a-secret"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "key"]
    assert expect(client.get(secret_url), 200)["key"] == before


def test_secret_of_an_unknown_endpoint_is_404(client: TestClient, app_id: str) -> None:
    assert client.get(f"{endpoints(app_id)}/nope/secret").status_code == 404
    assert client.post(f"{endpoints(app_id)}/nope/secret/rotate", json={}).status_code == 404


def test_filter_types_is_the_older_name_of_event_types(client: TestClient, app_id: str) -> None:
    """Svix's clients before 2.0 (the JavaScript one on Node 20) send and read filterTypes."""
    declare_event_types(client, "a", "b")

    made = expect(client.post(endpoints(app_id), json={"url": "https://127.0.0.1:9/h", "filterTypes": ["a"]}), 201)
    patched = expect(client.patch(f"{endpoints(app_id)}/{made['id']}", json={"filterTypes": ["b"]}), 200)

    assert (made["eventTypes"], made["filterTypes"]) == (["a"], ["a"])
    assert (patched["eventTypes"], patched["filterTypes"]) == (["b"], ["b"])


def test_a_token_cannot_subscribe_to_an_event_type_behind_a_flag_it_lacks(client: TestClient, app_id: str) -> None:
    """The same 422 as an unknown name (a 201 let the hidden name leak, and its events flow), on
    create, update, patch and upsert; a token holding the flag and the admin may subscribe."""
    for name, flags in (("open.one", None), ("beta.one", ["beta"])):
        expect(client.post("/api/v1/event-type", json={"name": name, "description": "", "featureFlags": flags}), 201)

    def token(**fields: object) -> dict[str, str]:
        minted = expect(client.post(f"/api/v1/auth/app-portal-access/{app_id}", json=fields), 200)
        return {"authorization": f"Bearer {minted['token']}"}

    plain, beta = token(), token(featureFlags=["beta"])
    url = "https://127.0.0.1:9/hook"
    existing = expect(client.post(endpoints(app_id), json={"url": url, "eventTypes": ["open.one"]}), 201)
    at = f"{endpoints(app_id)}/{existing['id']}"

    def refusal(name: str) -> list[tuple[int, object]]:
        body = {"url": url, "eventTypes": ["open.one", name]}
        answers = [
            client.post(endpoints(app_id), json=body, headers=plain),
            client.put(at, json=body, headers=plain),
            client.patch(at, json={"eventTypes": [name]}, headers=plain),
            client.put(f"{endpoints(app_id)}/{unique('new')}", json=body, headers=plain),
        ]
        return [(answer.status_code, answer.json()) for answer in answers]

    hidden, unknown = refusal("beta.one"), refusal("nope.one")
    assert [status for status, _ in hidden] == [422] * 4
    assert str(hidden).replace("beta.one", "NAME") == str(unknown).replace("nope.one", "NAME")
    assert expect(client.get(at), 200)["filterTypes"] == ["open.one"]
    subscribed = {"url": url, "eventTypes": ["beta.one"]}
    expect(client.post(endpoints(app_id), json=subscribed, headers=beta), 201)
    expect(client.patch(at, json={"eventTypes": ["open.one", "beta.one"]}, headers=beta), 200)
    # A name the admin subscribed it to stays when a token without the flag changes the rest.
    expect(client.patch(at, json={"eventTypes": ["beta.one"]}, headers=plain), 200)
    expect(client.post(endpoints(app_id), json=subscribed), 201)
