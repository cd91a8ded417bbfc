"""The destination pages in process, on both fronts: what they show, their forms acting through the
destination service (checked through the API), CSRF, and the portal's one application.

The browser test (test_destination_browser.py) drives the same pages in Chromium against real processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from hookpost.app import API_PREFIX, create_app
from hookpost.console.destinations import actions as console_actions
from hookpost.portal.destinations import actions as portal_actions
from hookpost.portal.destinations import pages as portal_pages
from hookpost.portal.web import Mirrors, check_portal_csrf
from hookpost.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.console.support import csrf_token_of, forms_of, sign_in

API = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def browser(settings: Settings) -> Iterator[TestClient]:
    """A client with no token: it has only what a browser would, cookies."""
    with TestClient(create_app(settings)) as client:
        yield client


def _api(client: TestClient, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    answer = client.request(method, f"/api/v1{path}", json=body, headers=API)
    assert answer.status_code == status, answer.text
    return answer.json() if answer.content else None


def _app(client: TestClient, name: str) -> str:
    app_id: str = _api(client, "POST", "/app", {"name": name}, 201)["id"]
    return app_id


def _fifo(client: TestClient, app_id: str, uid: str) -> str:
    body = {"type": "fifoEndpoint", "uid": uid, "config": {"url": f"http://127.0.0.1:9/{uid}"}}
    destination_id: str = _api(client, "POST", f"/app/{app_id}/destination", body, 201)["id"]
    return destination_id


def _open_portal(client: TestClient, app_id: str, **fields: Any) -> None:
    """As the portal page's script does: the link's key, POSTed with the page's CSRF token."""
    url = _api(client, "POST", f"/auth/app-portal-access/{app_id}", fields)["url"]
    path, _, key = url.removeprefix("http://testserver").partition("#key=")
    token = csrf_token_of(client.get(path).text)
    assert client.post("/portal/session", data={"token": key, "csrf_token": token}).status_code == 200


@pytest.mark.parametrize("root", ["/console", "/portal"])
def test_destinations_are_created_listed_disabled_rotated_and_deleted_from_the_pages(
    browser: TestClient, root: str
) -> None:
    app_id = _app(browser, "acme")
    _api(browser, "PUT", "/event-type/order.paid", {"description": "An order was paid"}, 201)
    if root == "/console":
        assert sign_in(browser).status_code == 303
    else:
        _open_portal(browser, app_id)
    listing = f"{root}/app/{app_id}/destination"
    assert listing in browser.get(f"{root}/app/{app_id}").text  # the application's page leads there
    page = browser.get(listing)
    assert "No destinations yet." in page.text
    token = csrf_token_of(page.text)

    created = browser.post(
        listing,
        data={
            "csrf_token": token,
            "type": "fifoEndpoint",
            "url": "http://user:hunter2@127.0.0.1:9/batches",
            "uid": "orders-fifo",
            "batch_size": "20",
            "max_wait_secs": "3",
            "event_types": "order.paid",
            "channels": "eu, us",
            "routing_key": "ignored for this type",
        },
    )
    assert created.status_code == 200, created.text
    assert "Created." in created.text
    destination_id = str(created.url).split("/destination/")[1].split("?")[0]
    shown = _api(browser, "GET", f"/app/{app_id}/destination/{destination_id}")
    assert (shown["type"], shown["uid"], shown["batchSize"], shown["maxWaitSecs"]) == (
        "fifoEndpoint",
        "orders-fifo",
        20,
        3,
    )
    assert (shown["eventTypes"], shown["channels"]) == (["order.paid"], ["eu", "us"])
    assert "hunter2" not in created.text  # the URL's password is never shown back
    assert "No attempts yet." in created.text

    polling = browser.post(listing, data={"csrf_token": token, "type": "pollingEndpoint", "url": ""})
    assert polling.status_code == 200
    listed = browser.get(listing).text
    assert "orders-fifo" in listed
    assert "pollingEndpoint" in listed
    assert "20 messages, waits 3 s" in listed

    # The API's checks, as a 422 page: a FIFO endpoint needs its URL; a batch has at most 1000.
    for data in (
        {"type": "fifoEndpoint"},
        {"type": "fifoEndpoint", "url": "http://127.0.0.1:9/x", "batch_size": "5000"},
    ):
        refused = browser.post(listing, data=data | {"csrf_token": token})
        assert refused.status_code == 422, data
    assert len(_api(browser, "GET", f"/app/{app_id}/destination")["data"]) == 2

    page_path = f"{listing}/{destination_id}"
    disabled = browser.post(f"{page_path}/status", data={"csrf_token": token, "enabled": "false"})
    assert "Destination disabled." in disabled.text
    assert _api(browser, "GET", f"/app/{app_id}/destination/{destination_id}")["status"] == "disabled"
    browser.post(f"{page_path}/status", data={"csrf_token": token, "enabled": "true"})
    assert _api(browser, "GET", f"/app/{app_id}/destination/{destination_id}")["status"] == "enabled"

    rotated = browser.post(f"{page_path}/secret/rotate", data={"csrf_token": token})
    assert rotated.status_code == 200
    assert rotated.headers["cache-control"] == "no-store"
    [key] = [form_field for form_field in rotated.text.split('"') if form_field.startswith("whsec_")]
    # Shown this once: the destination's own page never shows it.
    assert key not in browser.get(page_path).text
    assert browser.get(f"{page_path}/secret/rotate").status_code == 405

    confirm = browser.get(f"{page_path}/delete")
    [form] = [form for form in forms_of(confirm.text) if form.action == f"{page_path}/delete"]
    assert form.method == "post"
    assert _api(browser, "GET", f"/app/{app_id}/destination/{destination_id}")["id"] == destination_id
    deleted = browser.post(form.action, data=form.fields)
    assert "Destination deleted." in deleted.text
    _api(browser, "GET", f"/app/{app_id}/destination/{destination_id}", status=404)


@pytest.mark.parametrize("root", ["/console", "/portal"])
def test_every_destination_form_refuses_a_post_without_its_csrf_token(browser: TestClient, root: str) -> None:
    app_id = _app(browser, "acme")
    destination_id = _fifo(browser, app_id, "orders")
    if root == "/console":
        sign_in(browser)
    else:
        _open_portal(browser, app_id)
    listing = f"{root}/app/{app_id}/destination"
    paths = [listing, f"{listing}/{destination_id}", f"{listing}/{destination_id}/delete"]
    forms = [form for path in paths for form in forms_of(browser.get(path).text) if form.method == "post"]
    actions = {form.action for form in forms if "/destination" in form.action}
    assert actions == {
        listing,
        *(f"{listing}/{destination_id}/{step}" for step in ("status", "secret/rotate", "delete")),
    }
    for form in forms:
        if form.action in actions:
            without = {name: value for name, value in form.fields.items() if name != "csrf_token"}
            assert browser.post(form.action, data=without | {"type": "pollingEndpoint"}).status_code == 403
    shown = _api(browser, "GET", f"/app/{app_id}/destination")["data"]
    assert [(item["id"], item["status"]) for item in shown] == [(destination_id, "enabled")]


def test_a_portal_session_never_sees_or_changes_another_applications_destinations(browser: TestClient) -> None:
    mine, other = _app(browser, "acme"), _app(browser, "globex")
    my_destination = _fifo(browser, mine, "acme-orders")
    other_destination = _fifo(browser, other, "globex-orders")
    before = _api(browser, "GET", f"/app/{other}/destination/{other_destination}")
    _open_portal(browser, mine)
    token = csrf_token_of(browser.get(f"/portal/app/{mine}/destination").text)
    theirs, ours = f"/portal/app/{other}/destination", f"/portal/app/{mine}/destination"
    for path in (
        theirs,
        f"{theirs}/{other_destination}",
        f"{theirs}/{other_destination}/delete",
        f"{theirs}/globex-orders",  # by uid too
        f"{ours}/{other_destination}",  # its id under this application's path
        f"{ours}/globex-orders",
    ):
        answer = browser.get(path)
        assert answer.status_code == 404, path
        assert "globex" not in answer.text
    for action, data in (
        (theirs, {"type": "pollingEndpoint"}),
        (f"{theirs}/{other_destination}/status", {"enabled": "false"}),
        (f"{theirs}/{other_destination}/delete", {}),
        (f"{theirs}/{other_destination}/secret/rotate", {}),
        (f"{ours}/{other_destination}/status", {"enabled": "false"}),
        (f"{ours}/{other_destination}/delete", {}),
        (f"{ours}/{other_destination}/secret/rotate", {}),
    ):
        answer = browser.post(action, data=data | {"csrf_token": token})
        assert answer.status_code == 404, action
        assert "whsec_" not in answer.text
    assert _api(browser, "GET", f"/app/{other}/destination")["data"] == [before]  # unchanged, secret too
    assert _api(browser, "GET", f"/app/{other}/destination/{other_destination}")["updatedAt"] == before["updatedAt"]
    # Its own list shows its own destination and nothing of the other's.
    listed = browser.get(ours).text
    assert "acme-orders" in listed
    assert my_destination in listed
    for trace in ("globex", other, other_destination):
        assert trace not in listed


def test_a_read_only_portal_shows_destinations_without_forms_and_refuses_their_actions(browser: TestClient) -> None:
    app_id = _app(browser, "acme")
    destination_id = _fifo(browser, app_id, "orders")
    _open_portal(browser, app_id, readOnly=True)
    listing = f"/portal/app/{app_id}/destination"
    for path in (listing, f"{listing}/{destination_id}"):
        page = browser.get(path)
        assert page.status_code == 200
        assert "orders" in page.text
        assert [form.action for form in forms_of(page.text) if form.method == "post"] == ["/portal/sign-out"]
    token = csrf_token_of(browser.get(listing).text)
    for action, data in (
        (listing, {"type": "pollingEndpoint"}),
        (f"{listing}/{destination_id}/status", {"enabled": "false"}),
        (f"{listing}/{destination_id}/secret/rotate", {}),
        (f"{listing}/{destination_id}/delete", {}),
    ):
        answer = browser.post(action, data=data | {"csrf_token": token})
        assert answer.status_code == 403, action
    assert _api(browser, "GET", f"/app/{app_id}/destination/{destination_id}")["status"] == "enabled"


def test_every_portal_destination_route_is_an_api_operation_and_checks_csrf(settings: Settings) -> None:
    paths = create_app(settings).openapi()["paths"]
    api = {(method.upper(), path) for path, operations in paths.items() for method in operations}
    for route in [*portal_pages.routes, *portal_actions.routes]:
        assert isinstance(route, APIRoute)
        calls = [dependency.call for dependency in route.dependant.dependencies]
        [mirrored] = [call for call in calls if isinstance(call, Mirrors)]
        for method, path in mirrored.operations:
            assert (method, API_PREFIX + path) in api, (route.path, method, path)
        if route.methods != {"GET"}:
            assert check_portal_csrf in calls, route.path
    assert len(console_actions.routes) == len(portal_actions.routes) == 4
