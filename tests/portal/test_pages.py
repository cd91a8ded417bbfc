"""The app portal in process: opening a link, its session, its one application, CSRF, headers.

The browser tests (test_browser.py) drive the same pages in Chromium against real processes.
"""

from __future__ import annotations

import html
import logging
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from hookpost.app import API_PREFIX, create_app
from hookpost.kit.web_session import WebSessions
from hookpost.portal.router import actions as portal_actions
from hookpost.portal.router import pages as portal_pages
from hookpost.portal.router import router as portal_router
from hookpost.portal.web import Mirrors, check_portal_csrf
from hookpost.settings import Settings
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.console.support import assert_refuses_framing_and_inline_code, csrf_token_of, forms_of
from tests.delivery.test_ed25519_signing import new_whsk, whpk_of
from tests.support.databases import upgrade_to_head

API = {"authorization": f"Bearer {ADMIN_TOKEN}"}
EXAMPLE = {"type": "object", "examples": [{"order": 42}]}


@dataclass(frozen=True)
class Seeded:
    app_id: str
    endpoint_id: str
    msg_id: str
    other_app_id: str
    other_endpoint_id: str
    other_msg_id: str


@pytest.fixture
def browser(settings: Settings) -> Iterator[TestClient]:
    """A client with no token: it has only what a browser would, cookies."""
    with TestClient(create_app(settings)) as client:
        yield client


def _api(client: TestClient, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    answer = client.request(method, f"/api/v1{path}", json=body, headers=API)
    assert answer.status_code == status, answer.text
    return answer.json() if answer.content else None


def _app_with_a_message(client: TestClient, name: str) -> tuple[str, str, str]:
    app_id = _api(client, "POST", "/app", {"name": name}, 201)["id"]
    endpoint = _api(client, "POST", f"/app/{app_id}/endpoint", {"url": f"http://127.0.0.1:9/{name}"}, 201)
    message = _api(client, "POST", f"/app/{app_id}/msg", {"eventType": "order.paid", "payload": {"n": 1}}, 202)
    return app_id, endpoint["id"], message["id"]


@pytest.fixture
def seeded(browser: TestClient) -> Seeded:
    _api(browser, "PUT", "/event-type/order.paid", {"description": "An order was paid", "schemas": {"1": EXAMPLE}}, 201)
    _api(browser, "PUT", "/event-type/beta.thing", {"description": "Flagged", "featureFlags": ["beta"]}, 201)
    return Seeded(*_app_with_a_message(browser, "acme"), *_app_with_a_message(browser, "globex"))


def mint(client: TestClient, app_id: str, **fields: Any) -> dict[str, str]:
    access: dict[str, str] = _api(client, "POST", f"/auth/app-portal-access/{app_id}", fields)
    return access


def open_link(client: TestClient, url: str) -> Any:
    """What the page's script does: POST the fragment's key with the page's CSRF token."""
    path, _, fragment = url.removeprefix("http://testserver").partition("#key=")
    page = client.get(path)
    return client.post("/portal/session", data={"token": fragment, "csrf_token": csrf_token_of(page.text)})


@pytest.fixture
def portal(browser: TestClient, seeded: Seeded) -> TestClient:
    assert open_link(browser, mint(browser, seeded.app_id)["url"]).status_code == 200
    return browser


def _database(settings: Settings) -> Path:
    return Path(make_url(settings.database_url).database or "")


def _pages(seeded: Seeded) -> list[str]:
    app = f"/portal/app/{seeded.app_id}"
    return [app, f"{app}/endpoint/{seeded.endpoint_id}", f"{app}/msg/{seeded.msg_id}"]


def test_a_link_opens_a_session_in_an_httponly_cookie_without_the_token(
    browser: TestClient, seeded: Seeded, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    access = mint(browser, seeded.app_id)
    path, _, fragment = access["url"].partition("#")
    assert fragment == f"key={access['token']}"
    page = browser.get(path.removeprefix("http://testserver"))
    assert page.headers["referrer-policy"] == "no-referrer"
    assert 'src="/portal/static/portal.js"' in page.text
    opened = browser.post(
        "/portal/session",
        data={"token": access["token"], "csrf_token": csrf_token_of(page.text)},
        follow_redirects=False,
    )
    assert opened.status_code == 303
    assert opened.headers["location"] == f"/portal/app/{seeded.app_id}"
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith("hookpost_portal=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/portal" in cookie
    assert access["token"] not in cookie
    assert int(cookie.split("Max-Age=")[1].split(";")[0]) <= 7 * 24 * 3600  # the token's default expiry
    assert browser.get(opened.headers["location"]).status_code == 200
    # The console does not take it: an app portal session is not the admin's.
    assert browser.get("/console/", follow_redirects=False).status_code == 303
    assert access["token"] not in caplog.text


@pytest.fixture
def embeddable(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path, portal_frame_ancestors="https://app.example.net")
    upgrade_to_head(settings)
    return settings


@pytest.mark.parametrize(
    ("base_url", "cross_site"),
    [
        ("https://hooks.example.com", True),
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000", True),
        ("http://[::1]:8000", True),
        ("http://hooks.example.com", False),
        ("http://10.0.0.5", False),
    ],
)
def test_cookies_reach_a_frame_on_another_site_when_embedding_is_allowed(
    embeddable: Settings, base_url: str, cross_site: bool
) -> None:
    """Framed by the operator's site, the portal gets only SameSite=None; Secure; Partitioned cookies,
    which browsers take over HTTPS or on loopback; over plain HTTP elsewhere they stay SameSite=Lax."""
    with TestClient(create_app(embeddable), base_url=base_url) as client:
        cookie = client.get("/portal").headers["set-cookie"]
        assert cookie.startswith("hookpost_portal_csrf=")
        assert "; Path=/portal; HttpOnly" in cookie
        if cross_site:
            assert cookie.endswith("; Secure; SameSite=None; Partitioned"), cookie
        else:
            assert cookie.endswith("; SameSite=Lax"), cookie
            assert "Secure" not in cookie
        # The console's cookies are never written for a frame.
        console = client.get("/console/sign-in").headers["set-cookie"]
        assert console.startswith("hookpost_csrf=")
        assert console.endswith("SameSite=Lax")


def test_a_session_for_a_frame_on_another_site(embeddable: Settings) -> None:
    """Over HTTPS (loopback alike, which Chromium treats as secure: test_browser.py frames it there)."""
    base_url = "https://hooks.example.com"
    with TestClient(create_app(embeddable), base_url=base_url) as client:
        app_id = _api(client, "POST", "/app", {"name": "framed"}, 201)["id"]
        path, _, token = mint(client, app_id)["url"].removeprefix(base_url).partition("#key=")
        page = client.get(path)
        data = {"token": token, "csrf_token": csrf_token_of(page.text)}
        opened = client.post("/portal/session", data=data, follow_redirects=False)
        assert opened.status_code == 303
        cookie = opened.headers["set-cookie"]
        assert cookie.startswith("hookpost_portal=")
        assert cookie.endswith(
            "; Path=/portal; HttpOnly; Max-Age="
            + cookie.split("Max-Age=")[1].split(";")[0]
            + "; Secure; SameSite=None; Partitioned"
        )
        assert client.get(opened.headers["location"]).status_code == 200
        # SameSite=None sends the cookies with another site's POST: the CSRF token still refuses it.
        refused = client.post(f"/portal/app/{app_id}/endpoint", data={"url": "https://example.org/hook"})
        assert refused.status_code == 403


def test_a_wrong_or_missing_session_is_refused(browser: TestClient, seeded: Seeded) -> None:
    assert browser.get(f"/portal/app/{seeded.app_id}").status_code == 401
    refused = open_link(browser, "/portal#key=hp_app_not-a-real-token")
    assert refused.status_code == 401
    assert "expired or is not valid" in refused.text
    assert "hookpost_portal" not in refused.headers.get("set-cookie", "")
    # A console session is not a portal session either.
    console = browser.get("/console/sign-in")
    browser.post("/console/sign-in", data={"token": ADMIN_TOKEN, "csrf_token": csrf_token_of(console.text)})
    assert browser.get(f"/portal/app/{seeded.app_id}").status_code == 401


def test_the_session_ends_with_its_token(portal: TestClient, seeded: Seeded, settings: Settings) -> None:
    assert portal.get(f"/portal/app/{seeded.app_id}").status_code == 200
    with sqlite3.connect(_database(settings)) as database:
        database.execute("UPDATE access_token SET expires_at = '2000-01-01 00:00:00.000000'")
    for path in _pages(seeded):
        ended = portal.get(path)
        assert ended.status_code == 401, path
        assert "open the portal link you were given again" in ended.text
    # And an expired link opens nothing.
    expired = mint(portal, seeded.app_id, expiry=3600)
    with sqlite3.connect(_database(settings)) as database:
        database.execute("UPDATE access_token SET expires_at = '2000-01-01 00:00:00.000000'")
    assert open_link(portal, expired["url"]).status_code == 401


def test_the_session_ends_when_its_token_logs_out(browser: TestClient, seeded: Seeded) -> None:
    access = mint(browser, seeded.app_id)
    open_link(browser, access["url"])
    assert browser.get(f"/portal/app/{seeded.app_id}").status_code == 200
    logout = browser.post("/api/v1/auth/logout", headers={"authorization": f"Bearer {access['token']}"})
    assert logout.status_code == 204
    assert browser.get(f"/portal/app/{seeded.app_id}").status_code == 401


def test_signing_out_ends_the_session_and_its_link(browser: TestClient, seeded: Seeded) -> None:
    access = mint(browser, seeded.app_id)
    kept = mint(browser, seeded.app_id)["token"]  # another link of the same application
    open_link(browser, access["url"])
    app = f"/portal/app/{seeded.app_id}"
    page = browser.get(app).text
    [sign_out] = [form for form in forms_of(page) if form.action == "/portal/sign-out"]
    cookie = browser.cookies.get("hookpost_portal")
    assert cookie
    # A form like every other: refused without its CSRF token.
    assert browser.post("/portal/sign-out").status_code == 403
    assert browser.get(app).status_code == 200

    signed_out = browser.post("/portal/sign-out", data=sign_out.fields)
    assert signed_out.status_code == 200
    assert "You have signed out" in signed_out.text
    assert browser.cookies.get("hookpost_portal") is None
    assert browser.get(app).status_code == 401
    # Neither a copy of the cookie nor the link opens it again; the application's other links still do.
    browser.cookies.set("hookpost_portal", cookie, path="/portal")
    assert browser.get(app).status_code == 401
    assert open_link(browser, access["url"]).status_code == 401
    assert _api(browser, "GET", f"/app/{seeded.app_id}")["id"] == seeded.app_id
    assert browser.get(f"/api/v1/app/{seeded.app_id}", headers={"authorization": f"Bearer {kept}"}).status_code == 200


def test_expire_all_ends_every_session_and_token_of_the_application(browser: TestClient, seeded: Seeded) -> None:
    open_link(browser, mint(browser, seeded.app_id)["url"])
    token = mint(browser, seeded.app_id)["token"]
    other = mint(browser, seeded.other_app_id)["token"]
    assert browser.get(f"/portal/app/{seeded.app_id}").status_code == 200

    _api(browser, "POST", f"/auth/app/{seeded.app_id}/expire-all", {}, 204)

    assert browser.get(f"/portal/app/{seeded.app_id}").status_code == 401
    as_token = {"authorization": f"Bearer {token}"}
    assert browser.get(f"/api/v1/app/{seeded.app_id}", headers=as_token).status_code == 401
    as_other = {"authorization": f"Bearer {other}"}
    assert browser.get(f"/api/v1/app/{seeded.other_app_id}", headers=as_other).status_code == 200


SAME_ORIGIN = {"origin": "http://testserver"}


def _stream_closed(client: TestClient, path: str, headers: dict[str, str]) -> int:
    """The close code of a stream the server refuses."""
    with client.websocket_connect(path, headers=headers) as socket, pytest.raises(WebSocketDisconnect) as closed:
        socket.receive_json()
    return closed.value.code


def test_the_live_stream_takes_the_portal_session_for_its_application_only(portal: TestClient, seeded: Seeded) -> None:
    with portal.websocket_connect(f"/portal/app/{seeded.app_id}/stream", headers=SAME_ORIGIN) as socket:
        assert socket.receive_json()["type"] == "stream.hello"
        # The other application's message first: the first event that comes must be ours.
        _api(portal, "POST", f"/app/{seeded.other_app_id}/msg", {"eventType": "order.paid", "payload": {}}, 202)
        mine = _api(portal, "POST", f"/app/{seeded.app_id}/msg", {"eventType": "order.paid", "payload": {}}, 202)
        event = socket.receive_json()
        assert (event["type"], event["msgId"]) == ("message.created", mine["id"])
    assert _stream_closed(portal, f"/portal/app/{seeded.other_app_id}/stream", SAME_ORIGIN) == 4403
    # Cookies go with a handshake from any page: another site's page, or none, is refused.
    for headers in ({"origin": "https://evil.example"}, {}):
        assert _stream_closed(portal, f"/portal/app/{seeded.app_id}/stream", headers) == 4401
    portal.cookies.clear()
    assert _stream_closed(portal, f"/portal/app/{seeded.app_id}/stream", SAME_ORIGIN) == 4401


def _close_code_while_sending(browser: TestClient, socket: WebSocketTestSession, app_id: str) -> int:
    """The code the stream closes with; a message posted before each read, so that a stream left
    open is seen sending (and the test fails at its deadline), not waited on for ever."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        _api(browser, "POST", f"/app/{app_id}/msg", {"eventType": "order.paid", "payload": {}}, 202)
        try:
            socket.receive_json()
        except WebSocketDisconnect as closed:
            return closed.code
    raise AssertionError("the stream stayed open")


def test_the_portals_open_stream_closes_when_its_token_logs_out(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, stream_token_check_interval=0.2)
    upgrade_to_head(settings)
    with TestClient(create_app(settings)) as browser:
        app_id = _api(browser, "POST", "/app", {"name": "acme"}, 201)["id"]
        access = mint(browser, app_id)
        open_link(browser, access["url"])
        with browser.websocket_connect(f"/portal/app/{app_id}/stream", headers=SAME_ORIGIN) as socket:
            assert socket.receive_json()["type"] == "stream.hello"
            logout = browser.post("/api/v1/auth/logout", headers={"authorization": f"Bearer {access['token']}"})
            assert logout.status_code == 204
            assert _close_code_while_sending(browser, socket, app_id) == 4401


def test_another_applications_pages_do_not_exist(portal: TestClient, seeded: Seeded) -> None:
    mine, other = f"/portal/app/{seeded.app_id}", f"/portal/app/{seeded.other_app_id}"
    for path in (
        other,
        f"{other}/endpoint/{seeded.other_endpoint_id}",
        f"{other}/msg/{seeded.other_msg_id}",
        f"{mine}/endpoint/{seeded.other_endpoint_id}",  # its ids under this application's pages
        f"{mine}/msg/{seeded.other_msg_id}",
    ):
        answer = portal.get(path)
        assert answer.status_code == 404, path
        assert "globex" not in answer.text
    token = csrf_token_of(portal.get(mine).text)
    for action, data in (
        (f"{other}/endpoint", {"url": "http://127.0.0.1:9/x"}),
        (f"{other}/endpoint/{seeded.other_endpoint_id}/delete", {}),
        (f"{mine}/endpoint/{seeded.other_endpoint_id}/delete", {}),
        (f"{other}/endpoint/{seeded.other_endpoint_id}/secret", {}),
        (f"{mine}/endpoint/{seeded.other_endpoint_id}/secret", {}),
        (f"{mine}/msg/{seeded.msg_id}/endpoint/{seeded.other_endpoint_id}/resend", {}),
    ):
        assert portal.post(action, data=data | {"csrf_token": token}).status_code == 404, action
    assert _api(portal, "GET", f"/app/{seeded.other_app_id}/endpoint/{seeded.other_endpoint_id}")["disabled"] is False
    # Nothing of the other application on this one's pages.
    for path in _pages(seeded):
        page = portal.get(path).text
        for trace in ("globex", seeded.other_app_id, seeded.other_endpoint_id, seeded.other_msg_id):
            assert trace not in page, (path, trace)


def test_every_form_refuses_a_post_without_its_csrf_token(portal: TestClient, seeded: Seeded) -> None:
    forms = [form for path in _pages(seeded) for form in forms_of(portal.get(path).text) if form.method == "post"]
    actions = {form.action for form in forms}
    # add; disable, rotate, edit, send example, recover, delete; resend
    assert len(actions) >= 8, actions
    other_token = WebSessions(ADMIN_TOKEN, 60).csrf_token(WebSessions.new_csrf_nonce())
    for form in forms:
        assert "csrf_token" in form.fields, form.action
        without = {name: value for name, value in form.fields.items() if name != "csrf_token"}
        for data in (without, without | {"csrf_token": other_token}, without | {"csrf_token": "forged"}):
            assert portal.post(form.action, data=data).status_code == 403, (form.action, data)
    assert len(_api(portal, "GET", f"/app/{seeded.app_id}/endpoint")["data"]) == 1
    # Opening a session is a form too.
    assert portal.post("/portal/session", data={"token": mint(portal, seeded.app_id)["token"]}).status_code == 403


def test_a_recovery_started_here_shows_its_progress_and_no_other(portal: TestClient, seeded: Seeded) -> None:
    page = f"/portal/app/{seeded.app_id}/endpoint/{seeded.endpoint_id}"
    token = csrf_token_of(portal.get(page).text)
    recovered = portal.post(f"{page}/recover", data={"csrf_token": token, "since": "2020-01-01T00:00:00"})
    task_id = recovered.url.params["task"]
    assert f"Recovery <code>{task_id}</code>" in recovered.text
    # The operator's recovery of another application's endpoint: its id shows nothing here.
    other_endpoint = f"/app/{seeded.other_app_id}/endpoint/{seeded.other_endpoint_id}"
    other_task = _api(portal, "POST", f"{other_endpoint}/recover", {"since": "2020-01-01T00:00:00Z"}, 202)["id"]
    shown = portal.get(page, params={"task": other_task}).text
    assert "Recovery <code>" not in shown  # (the id itself is in the address the page refreshes from)


def test_forms_act_through_the_api_services(portal: TestClient, seeded: Seeded) -> None:
    app = f"/portal/app/{seeded.app_id}"
    token = csrf_token_of(portal.get(app).text)
    added = portal.post(
        f"{app}/endpoint",
        data={"csrf_token": token, "url": "http://127.0.0.1:9/new", "description": "New", "event_types": "order.paid"},
    )
    assert added.status_code == 200
    assert "Created." in added.text
    endpoint_id = str(added.url).split("/endpoint/")[1].split("?")[0]
    page = f"{app}/endpoint/{endpoint_id}"
    endpoint = _api(portal, "GET", f"/app/{seeded.app_id}/endpoint/{endpoint_id}")
    assert (endpoint["url"], endpoint["description"], endpoint["eventTypes"]) == (
        "http://127.0.0.1:9/new",
        "New",
        ["order.paid"],
    )
    # The API's rules, not the portal's: only event types of the catalogue.
    unknown = portal.post(page, data={"csrf_token": token, "url": "http://127.0.0.1:9/new", "event_types": "nope"})
    assert unknown.status_code == 422
    assert "nope" in unknown.text

    portal.post(page, data={"csrf_token": token, "url": "http://127.0.0.1:9/edited", "description": "Edited"})
    endpoint = _api(portal, "GET", f"/app/{seeded.app_id}/endpoint/{endpoint_id}")
    assert (endpoint["url"], endpoint["eventTypes"]) == ("http://127.0.0.1:9/edited", None)  # none ticked: all

    portal.post(f"{page}/disabled", data={"csrf_token": token, "disabled": "true"})
    assert _api(portal, "GET", f"/app/{seeded.app_id}/endpoint/{endpoint_id}")["disabled"] is True
    portal.post(f"{page}/disabled", data={"csrf_token": token, "disabled": "false"})
    assert _api(portal, "GET", f"/app/{seeded.app_id}/endpoint/{endpoint_id}")["disabled"] is False

    before = _api(portal, "GET", f"/app/{seeded.app_id}/endpoint/{endpoint_id}/secret")["key"]
    portal.post(f"{page}/secret/rotate", data={"csrf_token": token})
    after = _api(portal, "GET", f"/app/{seeded.app_id}/endpoint/{endpoint_id}/secret")["key"]
    assert after != before
    assert after in portal.post(f"{page}/secret", data={"csrf_token": token}).text
    # Only a form's POST shows it: no link, prefetch or Referer can.
    shown = portal.get(f"{page}/secret")
    assert shown.status_code == 405
    assert after not in shown.text

    sent = portal.post(f"{page}/send-example", data={"csrf_token": token, "event_type": "order.paid"})
    assert "Example sent." in sent.text
    newest = _api(portal, "GET", f"/app/{seeded.app_id}/msg")["data"][0]
    assert newest["payload"] == {"order": 42}

    resend = portal.post(f"{app}/msg/{seeded.msg_id}/endpoint/{endpoint_id}/resend", data={"csrf_token": token})
    assert "Resend queued." in resend.text

    portal.post(f"{page}/delete", data={"csrf_token": token})
    _api(portal, "GET", f"/app/{seeded.app_id}/endpoint/{endpoint_id}", status=404)


def test_a_read_only_portal_has_no_forms_and_refuses_actions(browser: TestClient, seeded: Seeded) -> None:
    open_link(browser, mint(browser, seeded.app_id, readOnly=True)["url"])
    for path in _pages(seeded):
        page = browser.get(path)
        assert page.status_code == 200, path
        # Signing out alone; not even the filters: they are fields and links.
        assert [form.action for form in forms_of(page.text)] == ["/portal/sign-out"], path
        assert page.text.count("<form") == 1, path
        assert "Reveal secret" not in page.text, path
    assert "read-only" in browser.get(_pages(seeded)[0]).text
    # Even with a valid CSRF token (from the page that opens a portal), every action is refused.
    token = csrf_token_of(browser.get("/portal").text)
    secret = browser.post(
        f"/portal/app/{seeded.app_id}/endpoint/{seeded.endpoint_id}/secret", data={"csrf_token": token}
    )
    assert secret.status_code == 403
    assert "whsec_" not in secret.text
    app = f"/portal/app/{seeded.app_id}"
    for action in (
        f"{app}/endpoint",
        f"{app}/endpoint/{seeded.endpoint_id}/delete",
        f"{app}/endpoint/{seeded.endpoint_id}/secret/rotate",
        f"{app}/msg/{seeded.msg_id}/endpoint/{seeded.endpoint_id}/resend",
    ):
        answer = browser.post(action, data={"csrf_token": token, "url": "http://127.0.0.1:9/x"})
        assert answer.status_code == 403, action
        assert "read-only" in answer.text
    assert _api(browser, "GET", f"/app/{seeded.app_id}/endpoint/{seeded.endpoint_id}")["disabled"] is False


def test_the_catalogue_offers_what_the_token_sees(browser: TestClient, seeded: Seeded) -> None:
    page = f"/portal/app/{seeded.app_id}"
    open_link(browser, mint(browser, seeded.app_id)["url"])
    plain = browser.get(page).text
    assert 'value="order.paid"' in plain
    assert "Schema and example of order.paid" in plain
    shown = html.unescape(plain)
    assert '"type": "object"' in shown  # its schema
    assert '"order": 42' in shown  # and its example
    assert 'value="beta.thing"' not in plain
    open_link(browser, mint(browser, seeded.app_id, featureFlags=["beta"])["url"])
    assert 'value="beta.thing"' in browser.get(page).text


def test_messages_filter_by_event_type_and_attempts_by_status(portal: TestClient, seeded: Seeded) -> None:
    page = f"/portal/app/{seeded.app_id}"
    everything = {"event_type": "", "after": "", "before": ""}
    assert seeded.msg_id in portal.get(page, params=everything).text
    assert seeded.msg_id not in portal.get(page, params=everything | {"event_type": "user.signup"}).text
    assert seeded.msg_id not in portal.get(page, params=everything | {"before": "2020-01-01T00:00"}).text
    endpoint = f"{page}/endpoint/{seeded.endpoint_id}"
    assert portal.get(endpoint, params={"status": "fail"}).status_code == 200


def test_pages_send_csp_and_refuse_framing_by_default(portal: TestClient, seeded: Seeded) -> None:
    for path in [*_pages(seeded), "/portal", f"/portal/app/{seeded.other_app_id}"]:
        page = portal.get(path)
        assert_refuses_framing_and_inline_code(page, path)
        assert page.headers["referrer-policy"] == "no-referrer", path


def test_framing_and_look_come_from_the_settings(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        portal_frame_ancestors="https://app.example.com https://*.example.org",
        portal_product_name="Acme Webhooks",
        portal_logo_url="https://cdn.example.com/acme.svg",
        portal_accent_color="#c72452",
    )
    upgrade_to_head(settings)
    with TestClient(create_app(settings)) as client:
        page = client.get("/portal")
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors https://app.example.com https://*.example.org;" in csp
        assert "img-src 'self' data: https://cdn.example.com;" in csp
        assert "x-frame-options" not in page.headers  # it cannot name origins: the CSP decides
        assert "<title>Open · Acme Webhooks</title>" in page.text
        assert 'src="https://cdn.example.com/acme.svg"' in page.text
        assert "--accent: #c72452;" in client.get("/portal/theme.css").text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("portal_frame_ancestors", "https://ok.example; script-src *"),
        ("portal_frame_ancestors", "https://ok.example,'unsafe-inline'"),
        ("portal_logo_url", "javascript:alert(1)"),
        ("portal_logo_url", "//evil.example/logo.png"),
        ("portal_accent_color", "red; } body { display: none"),
    ],
)
def test_settings_that_would_break_out_of_their_header_or_stylesheet_are_refused(
    tmp_path: Path, name: str, value: str
) -> None:
    with pytest.raises(ValueError, match=name):
        make_settings(tmp_path, **{name: value})


def test_what_users_sent_is_shown_as_text_never_as_markup(portal: TestClient, seeded: Seeded) -> None:
    evil = "<script>alert(1)</script>"
    _api(portal, "POST", f"/app/{seeded.app_id}/endpoint", {"url": "http://127.0.0.1:9/e", "description": evil}, 201)
    message_in = {"eventType": "order.paid", "payload": {"html": evil}}
    msg_id = _api(portal, "POST", f"/app/{seeded.app_id}/msg", message_in, 202)["id"]
    for path in (f"/portal/app/{seeded.app_id}", f"/portal/app/{seeded.app_id}/msg/{msg_id}"):
        page = portal.get(path).text
        assert evil not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path


def test_every_page_and_action_is_an_api_operation(settings: Settings) -> None:
    paths = create_app(settings).openapi()["paths"]
    api = {(method.upper(), path) for path, operations in paths.items() for method in operations}
    routes = [route for router in (portal_pages, portal_actions) for route in router.routes]
    assert len(routes) >= 12
    for route in routes:
        assert isinstance(route, APIRoute)
        calls = [dependency.call for dependency in route.dependant.dependencies]
        [mirrored] = [call for call in calls if isinstance(call, Mirrors)]
        assert mirrored.operations, route.path
        for method, path in mirrored.operations:
            assert (method, API_PREFIX + path) in api, (route.path, method, path)


def test_every_route_that_is_not_a_get_checks_the_csrf_token() -> None:
    """With SameSite=None cookies (framed from another site) the CSRF token is what refuses another
    site's request: every POST of the portal, forms and htmx alike, depends on its check."""
    routes = [*portal_router.routes, *portal_pages.routes, *portal_actions.routes]
    posts = [route for route in routes if isinstance(route, APIRoute) and route.methods != {"GET"}]
    assert len(posts) >= 9
    for route in posts:
        assert route.methods == {"POST"}, route.path
        calls = [dependency.call for dependency in route.dependant.dependencies]
        assert check_portal_csrf in calls, route.path


def test_a_uid_shaped_as_another_applications_id_opens_nothing_of_it(
    browser: TestClient, seeded: Seeded, settings: Settings
) -> None:
    """acme's uid set to globex's id, as a database written before uids were checked may hold it:
    acme's portal still has nothing of globex."""
    with sqlite3.connect(_database(settings)) as database:
        database.execute("UPDATE application SET uid = ? WHERE id = ?", (seeded.other_app_id, seeded.app_id))
    open_link(browser, mint(browser, seeded.app_id)["url"])
    other = f"/portal/app/{seeded.other_app_id}"
    for path in (other, f"{other}/endpoint/{seeded.other_endpoint_id}", f"{other}/msg/{seeded.other_msg_id}"):
        answer = browser.get(path)
        assert answer.status_code == 404, path
        assert "globex" not in answer.text
        assert "whsec_" not in answer.text
    token = csrf_token_of(browser.get(f"/portal/app/{seeded.app_id}").text)
    for action, data in (
        (f"{other}/endpoint", {"url": "http://127.0.0.1:9/stolen"}),
        (f"{other}/endpoint/{seeded.other_endpoint_id}/secret", {}),
        (f"{other}/endpoint/{seeded.other_endpoint_id}/delete", {}),
    ):
        assert browser.post(action, data=data | {"csrf_token": token}).status_code == 404, action
    assert len(_api(browser, "GET", f"/app/{seeded.other_app_id}/endpoint")["data"]) == 1
    assert browser.get(f"/portal/app/{seeded.app_id}").status_code == 200


@pytest.mark.parametrize(
    ("capabilities", "offered"),
    [
        (["ViewBase", "CreateAttempts"], {"send-example", "recover", "resend"}),
        (["ViewBase", "ManageEndpointSecret"], {"secret", "secret/rotate"}),
        (["ViewBase", "ViewEndpointSecret"], {"secret"}),
        (["ViewBase", "ManageEndpoint"], {"add", "secret", "secret/rotate", "edit", "disabled", "delete"}),
    ],
    ids=lambda value: "+".join(value) if isinstance(value, list) and "ViewBase" in value else None,
)
def test_a_portal_offers_and_does_only_what_its_capabilities_allow(
    browser: TestClient, seeded: Seeded, capabilities: list[str], offered: set[str]
) -> None:
    open_link(browser, mint(browser, seeded.app_id, capabilities=capabilities)["url"])
    app = f"/portal/app/{seeded.app_id}"
    page = f"{app}/endpoint/{seeded.endpoint_id}"
    resend = f"{app}/msg/{seeded.msg_id}/endpoint/{seeded.endpoint_id}/resend"
    actions = {  # each action of the portal: its form's place, and a POST that does it
        "add": (app, f"{app}/endpoint", {"url": "http://127.0.0.1:9/added"}),
        "edit": (page, page, {"url": "http://127.0.0.1:9/edited"}),
        "disabled": (page, f"{page}/disabled", {"disabled": "false"}),
        "secret": (page, f"{page}/secret", {}),
        "secret/rotate": (page, f"{page}/secret/rotate", {}),
        "send-example": (page, f"{page}/send-example", {"event_type": "order.paid"}),
        "recover": (page, f"{page}/recover", {"since": "2020-01-01T00:00:00"}),
        "resend": (f"{app}/msg/{seeded.msg_id}", resend, {}),
        "delete": (page, f"{page}/delete", {}),
    }
    shown = {
        path: {form.action for form in forms_of(browser.get(path).text) if form.method == "post"}
        for path in {where for where, _, _ in actions.values()}
    }
    token = csrf_token_of(browser.get("/portal").text)
    for name, (where, action, data) in actions.items():
        assert (action in shown[where]) == (name in offered), (name, shown[where])
        answer = browser.post(action, data=data | {"csrf_token": token})
        if name in offered:
            assert answer.status_code == 200, (name, answer.text)
        else:
            assert answer.status_code == 403, name
            assert "capabilit" in answer.text
            assert "whsec_" not in answer.text


def test_the_portal_shows_an_ed25519_endpoints_public_key_not_its_private_one(
    portal: TestClient, seeded: Seeded
) -> None:
    whsk = new_whsk()
    path = f"/app/{seeded.app_id}/endpoint/{seeded.endpoint_id}/secret/rotate"
    _api(portal, "POST", path, {"key": whsk})
    page = f"/portal/app/{seeded.app_id}/endpoint/{seeded.endpoint_id}"
    shown = portal.post(f"{page}/secret", data={"csrf_token": csrf_token_of(portal.get(page).text)}).text
    assert whpk_of(whsk) in shown
    assert whsk.removeprefix("whsk_") not in shown
