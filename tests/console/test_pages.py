"""The console in process: sessions, CSRF, headers, and that its forms act as the API does.

The browser tests (test_browser.py) drive the same pages in Chromium against real processes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from starlette.websockets import WebSocketDisconnect

from hookpost.app import create_app
from hookpost.kit.web_session import WebSessions
from hookpost.settings import Settings
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.console.support import assert_refuses_framing_and_inline_code, csrf_token_of, forms_of, sign_in
from tests.support.databases import upgrade_to_head

API = {"authorization": f"Bearer {ADMIN_TOKEN}"}


def _seed(client: TestClient) -> tuple[str, str, str]:
    app_id = client.post("/api/v1/app", json={"name": "Acme", "uid": "acme"}, headers=API).json()["id"]
    for name in ("user.signup", "order.paid"):  # the catalogue the endpoint form's filter names
        assert client.put(f"/api/v1/event-type/{name}", json={"description": name}, headers=API).status_code == 201
    endpoint_in = {"url": "http://127.0.0.1:9/hook", "headers": {"X-Team": "a"}}
    endpoint = client.post(f"/api/v1/app/{app_id}/endpoint", json=endpoint_in, headers=API).json()
    message_in = {"eventType": "user.signup", "payload": {"n": 1}}
    message = client.post(f"/api/v1/app/{app_id}/msg", json=message_in, headers=API)
    return app_id, endpoint["id"], message.json()["id"]


def test_root_redirects_to_the_console_which_asks_to_sign_in(browser: TestClient) -> None:
    root = browser.get("/", follow_redirects=False)
    assert root.status_code == 307
    assert root.headers["location"] == "/console/"
    page = browser.get("/console/app", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/console/sign-in?next=%2Fconsole%2Fapp"
    assert "Admin token" in browser.get(page.headers["location"]).text


def test_without_the_console_there_is_no_page(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, console_enabled=False)
    upgrade_to_head(settings)
    with TestClient(create_app(settings)) as client:
        assert client.get("/", follow_redirects=False).status_code == 404
        assert client.get("/console/sign-in").status_code == 404
        assert client.get("/api/v1/app", headers=API).status_code == 200


def test_a_wrong_token_gets_no_session(browser: TestClient) -> None:
    answer = sign_in(browser, token="x" * 40)
    assert answer.status_code == 401
    assert "That is not the admin token." in answer.text
    assert "hookpost_session" not in answer.headers.get("set-cookie", "")
    assert browser.get("/console/", follow_redirects=False).status_code == 303


def test_the_session_is_an_httponly_samesite_cookie_without_the_token(browser: TestClient) -> None:
    answer = sign_in(browser)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("hookpost_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert ADMIN_TOKEN not in cookie
    assert ADMIN_TOKEN not in answer.headers["location"]
    assert browser.get("/console/").status_code == 200


def test_a_tampered_session_is_refused(signed_in: TestClient) -> None:
    value = signed_in.cookies["hookpost_session"]
    signed_in.cookies.set("hookpost_session", value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert signed_in.get("/console/", follow_redirects=False).status_code == 303


def test_sign_in_goes_back_only_to_a_page_of_ours(browser: TestClient) -> None:
    token = csrf_token_of(browser.get("/console/sign-in").text)
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        answer = browser.post(
            "/console/sign-in",
            data={"token": ADMIN_TOKEN, "csrf_token": token, "next": target},
            follow_redirects=False,
        )
        assert answer.headers["location"] == "/console/"


def test_sign_out_ends_the_session(signed_in: TestClient) -> None:
    token = csrf_token_of(signed_in.get("/console/").text)
    answer = signed_in.post("/console/sign-out", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303
    cleared = answer.headers["set-cookie"]
    assert cleared.startswith("hookpost_session=;")
    assert "Max-Age=0" in cleared
    assert signed_in.get("/console/", follow_redirects=False).headers["location"].startswith("/console/sign-in")


def test_a_copy_of_the_cookie_taken_before_signing_out_no_longer_signs_in(signed_in: TestClient) -> None:
    app_id, _, _ = _seed(signed_in)
    kept = signed_in.cookies["hookpost_session"]
    stream = f"/api/v1/app/{app_id}/stream"
    with signed_in.websocket_connect(stream, headers={"origin": "http://testserver"}) as socket:
        assert socket.receive_json()["type"] == "stream.hello"
    token = csrf_token_of(signed_in.get("/console/").text)
    assert signed_in.post("/console/sign-out", data={"csrf_token": token}, follow_redirects=False).status_code == 303

    signed_in.cookies.set("hookpost_session", kept)  # as one copied before signing out would
    page = signed_in.get("/console/app", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/console/sign-in?next=%2Fconsole%2Fapp"
    action = signed_in.post("/console/app", data={"name": "Late", "csrf_token": token}, follow_redirects=False)
    assert action.status_code == 303
    assert action.headers["location"].startswith("/console/sign-in")
    names = [app["name"] for app in signed_in.get("/api/v1/app", headers=API).json()["data"]]
    assert names == ["Acme"]
    with signed_in.websocket_connect(stream, headers={"origin": "http://testserver"}) as socket:
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
        assert closed.value.code == 4401
    # Signing in again makes a new session, which the ended one does not touch.
    signed_in.cookies.clear()
    assert sign_in(signed_in).status_code == 303
    assert signed_in.get("/console/app", follow_redirects=False).status_code == 200


def _pages(client: TestClient) -> list[str]:
    app_id, endpoint_id, msg_id = _seed(client)
    return [
        "/console/sign-in",
        "/console/",
        "/console/app",
        f"/console/app/{app_id}",
        f"/console/app/{app_id}/endpoint/{endpoint_id}",
        f"/console/app/{app_id}/msg/{msg_id}",
        "/console/app/app_0000000000000000000000",  # an error page too
    ]


def test_pages_send_csp_and_refuse_framing(signed_in: TestClient) -> None:
    for path in _pages(signed_in):
        page = signed_in.get(path)
        assert page.status_code in (200, 404), path
        assert_refuses_framing_and_inline_code(page, path)
    assert signed_in.get("/console/app/app_0000000000000000000000").status_code == 404


def test_every_form_refuses_a_post_without_its_csrf_token(signed_in: TestClient) -> None:
    forms = [form for path in _pages(signed_in) for form in forms_of(signed_in.get(path).text) if form.method == "post"]
    actions = {form.action for form in forms}
    assert len(actions) >= 9, actions  # sign in/out, app, endpoint, edit, disable, rotate, recover, resend
    # A valid token, but for another browser's nonce.
    other_token = WebSessions(ADMIN_TOKEN, 60).csrf_token(WebSessions.new_csrf_nonce())
    for form in forms:
        assert "csrf_token" in form.fields, form.action
        without = {name: value for name, value in form.fields.items() if name != "csrf_token"}
        for data in (without, without | {"csrf_token": other_token}, without | {"csrf_token": "forged"}):
            answer = signed_in.post(form.action, data=data, follow_redirects=False)
            assert answer.status_code == 403, (form.action, data)
    # Refused before acting: still signed in, still one application, the secret not rotated.
    assert signed_in.get("/console/", follow_redirects=False).status_code == 200
    assert len(signed_in.get("/api/v1/app", headers=API).json()["data"]) == 1


def test_forms_act_through_the_api_services(signed_in: TestClient) -> None:
    app_id, endpoint_id, msg_id = _seed(signed_in)
    page = f"/console/app/{app_id}/endpoint/{endpoint_id}"
    token = csrf_token_of(signed_in.get(page).text)
    edit = {
        "csrf_token": token,
        "url": "http://127.0.0.1:9/other",
        "description": "Orders",
        "event_types": "user.signup, order.paid",
        "throttle_rate": "7",
        "set_headers": "X-Env: prod",
        "delete_headers": "X-Team",
    }
    assert signed_in.post(page, data=edit, follow_redirects=False).headers["location"] == page + "?done=saved"
    endpoint = signed_in.get(f"/api/v1/app/{app_id}/endpoint/{endpoint_id}", headers=API).json()
    assert endpoint["url"] == "http://127.0.0.1:9/other"
    assert endpoint["description"] == "Orders"
    assert endpoint["eventTypes"] == ["user.signup", "order.paid"]
    assert endpoint["throttleRate"] == 7
    headers = signed_in.get(f"/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", headers=API).json()
    assert headers["headers"] == {"X-Env": "prod"}

    signed_in.post(f"{page}/disabled", data={"csrf_token": token, "disabled": "true"})
    assert signed_in.get(f"/api/v1/app/{app_id}/endpoint/{endpoint_id}", headers=API).json()["disabled"] is True
    assert "Enable endpoint" in signed_in.get(page).text
    signed_in.post(f"{page}/disabled", data={"csrf_token": token, "disabled": "false"})
    assert signed_in.get(f"/api/v1/app/{app_id}/endpoint/{endpoint_id}", headers=API).json()["disabled"] is False

    before = signed_in.get(f"/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret", headers=API).json()["key"]
    signed_in.post(f"{page}/secret/rotate", data={"csrf_token": token})
    after = signed_in.get(f"/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret", headers=API).json()["key"]
    assert after != before
    assert after in signed_in.post(f"{page}/secret", data={"csrf_token": token}).text
    # Only a form's POST shows it: no link, prefetch or Referer can.
    assert signed_in.post(f"{page}/secret").status_code == 403
    shown = signed_in.get(f"{page}/secret")
    assert shown.status_code == 405
    assert after not in shown.text

    recovered = signed_in.post(f"{page}/recover", data={"csrf_token": token, "since": "2020-01-01T00:00:00"})
    task_id = recovered.url.params["task"]
    assert signed_in.get(f"/api/v1/background-task/{task_id}", headers=API).json()["task"] == "endpoint.recover"
    assert task_id in recovered.text

    resend = signed_in.post(
        f"/console/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend", data={"csrf_token": token}
    )
    assert "Resend queued." in resend.text
    attempts_page = signed_in.get(f"/api/v1/app/{app_id}/msg/{msg_id}/endpoint", headers=API).json()["data"]
    assert attempts_page[0]["statusText"] == "pending"


def test_an_application_shows_each_messages_deliveries(signed_in: TestClient) -> None:
    app_id, _, msg_id = _seed(signed_in)
    page = signed_in.get(f"/console/app/{app_id}").text
    row = page.split(msg_id, 1)[1].split("</tr>", 1)[0]
    assert "1 pending" in row  # no worker runs here: the one delivery waits


def test_messages_filter_by_event_type_and_time(signed_in: TestClient) -> None:
    app_id, _, msg_id = _seed(signed_in)
    page = f"/console/app/{app_id}"
    everything = {"event_type": "", "after": "", "before": ""}  # what the form sends untouched
    assert msg_id in signed_in.get(page, params=everything).text
    assert msg_id in signed_in.get(page, params=everything | {"event_type": "other, user.signup"}).text
    assert msg_id not in signed_in.get(page, params=everything | {"event_type": "other"}).text
    assert msg_id in signed_in.get(page, params=everything | {"after": "2020-01-01T00:00:00"}).text
    assert msg_id not in signed_in.get(page, params=everything | {"before": "2020-01-01T00:00"}).text
    bad = signed_in.get(page, params=everything | {"after": "yesterday"})
    assert bad.status_code == 422
    assert "Input should be a valid datetime" in bad.text


def test_bad_form_input_is_a_page_saying_why(signed_in: TestClient) -> None:
    app_id, _, _ = _seed(signed_in)
    token = csrf_token_of(signed_in.get(f"/console/app/{app_id}").text)
    for url, why in (("not a url", "url"), ("http://10.1.2.3/hook", "not a public address")):
        answer = signed_in.post(f"/console/app/{app_id}/endpoint", data={"csrf_token": token, "url": url})
        assert answer.status_code == 422
        assert why in answer.text
        assert "Traceback" not in answer.text
    taken = signed_in.post("/console/app", data={"csrf_token": token, "name": "Again", "uid": "acme"})
    assert taken.status_code == 409
    assert "already exists" in taken.text


def test_applications_search_and_pages(signed_in: TestClient) -> None:
    for number in range(30):
        signed_in.post("/api/v1/app", json={"name": f"Shop {number:02d}"}, headers=API)
    signed_in.post("/api/v1/app", json={"name": "Bakery_1"}, headers=API)
    first = signed_in.get("/console/app").text
    assert "Shop 00" in first
    assert "Shop 26" not in first
    assert "Next page" in first
    iterator = first.split("iterator=")[1].split('"')[0]
    second = signed_in.get(f"/console/app?iterator={iterator}").text
    assert "Shop 26" in second
    assert "Shop 00" not in second
    found = signed_in.get("/console/app", params={"q": "bakery_"}).text
    assert "Bakery_1" in found
    assert "Shop" not in found.split("<tbody>")[1].split("</tbody>")[0]
    # LIKE's wildcards are literal in a search.
    assert "No applications" in signed_in.get("/console/app", params={"q": "%"}).text


def test_the_live_stream_takes_the_console_session_from_its_own_origin_only(signed_in: TestClient) -> None:
    app_id, _, _ = _seed(signed_in)
    path = f"/api/v1/app/{app_id}/stream"
    with signed_in.websocket_connect(path, headers={"origin": "http://testserver"}) as socket:
        assert socket.receive_json()["type"] == "stream.hello"
    for headers in ({"origin": "https://evil.example"}, {}):
        with signed_in.websocket_connect(path, headers=headers) as socket, pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
        assert closed.value.code == 4401
    signed_in.cookies.clear()
    with signed_in.websocket_connect(path, headers={"origin": "http://testserver"}) as socket:
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
        assert closed.value.code == 4401


def test_what_users_sent_is_shown_as_text_never_as_markup(signed_in: TestClient) -> None:
    evil = "<script>alert(1)</script>"
    app_id = signed_in.post("/api/v1/app", json={"name": evil}, headers=API).json()["id"]
    message_in = {"eventType": "x.y", "payload": {"html": evil}}
    msg_id = signed_in.post(f"/api/v1/app/{app_id}/msg", json=message_in, headers=API).json()["id"]
    for path in ("/console/app", f"/console/app/{app_id}", f"/console/app/{app_id}/msg/{msg_id}"):
        page = signed_in.get(path).text
        assert evil not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path


def test_endpoint_forms_pick_event_types_from_the_catalogue_and_send_examples(signed_in: TestClient) -> None:
    app_id, endpoint_id, _ = _seed(signed_in)
    example = {"type": "object", "examples": [{"user": "ada"}]}
    signed_in.put(
        "/api/v1/event-type/user.signup",
        json={"description": "A user signed up", "schemas": {"1": example}},
        headers=API,
    )
    page = f"/console/app/{app_id}/endpoint/{endpoint_id}"
    html = signed_in.get(page).text
    assert 'type="checkbox" id="e-event-types-2" name="event_types" value="user.signup"' in html
    token = csrf_token_of(html)
    ticked = {"csrf_token": token, "url": "http://127.0.0.1:9/hook", "event_types": ["order.paid", "user.signup"]}
    signed_in.post(page, data=ticked)
    endpoint = signed_in.get(f"/api/v1/app/{app_id}/endpoint/{endpoint_id}", headers=API).json()
    assert endpoint["eventTypes"] == ["order.paid", "user.signup"]
    assert 'name="event_types" value="user.signup" checked' in signed_in.get(page).text

    sent = signed_in.post(f"{page}/send-example", data={"csrf_token": token, "event_type": "user.signup"})
    assert "Example sent." in sent.text
    newest = signed_in.get(f"/api/v1/app/{app_id}/msg", headers=API).json()["data"][0]
    assert (newest["eventType"], newest["payload"]) == ("user.signup", {"user": "ada"})
    without = signed_in.post(f"{page}/send-example", data={"csrf_token": token, "event_type": "order.paid"})
    assert without.status_code == 422
    assert "has no examples" in without.text


def test_an_id_names_its_application_even_when_another_has_it_as_uid(signed_in: TestClient, settings: Settings) -> None:
    """A database written before uids were checked may hold a uid equal to another application's id."""
    holder = signed_in.post("/api/v1/app", json={"name": "Holder"}, headers=API).json()["id"]
    named = signed_in.post("/api/v1/app", json={"name": "Named"}, headers=API).json()["id"]
    database = make_url(settings.database_url).database or ""
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE application SET uid = ? WHERE id = ?", (named, holder))
    page = signed_in.get(f"/console/app/{named}")
    assert page.status_code == 200
    assert "Named" in page.text
    assert "Holder" not in page.text
    assert "Holder" in signed_in.get(f"/console/app/{holder}").text
