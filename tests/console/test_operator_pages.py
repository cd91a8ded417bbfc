"""The console's event type, background task and operational webhook pages, in process: they act
as the API does (checked through the API), refuse bad input with a page saying why, and sign-in
and CSRF guard them as every console page.
"""

from __future__ import annotations

import html
import json

from fastapi.testclient import TestClient

from hookpost.kit.web_session import WebSessions
from tests.conftest import ADMIN_TOKEN
from tests.console.support import assert_refuses_framing_and_inline_code, csrf_token_of, forms_of

API = {"authorization": f"Bearer {ADMIN_TOKEN}"}
ORDER_SCHEMA = {"type": "object", "required": ["id"], "examples": [{"id": 7}]}


def _token(client: TestClient, path: str = "/console/event-type") -> str:
    return csrf_token_of(client.get(path).text)


def test_event_types_are_created_edited_archived_and_deleted_as_through_the_api(signed_in: TestClient) -> None:
    token = _token(signed_in)
    form = {
        "csrf_token": token,
        "name": "order.paid",
        "description": "An order paid",
        "json_schema": json.dumps(ORDER_SCHEMA),
    }
    created = signed_in.post("/console/event-type", data=form, follow_redirects=False)
    assert created.headers["location"] == "/console/event-type/order.paid?done=created"
    stored = signed_in.get("/api/v1/event-type/order.paid", headers=API).json()
    assert (stored["description"], stored["schemas"]) == ("An order paid", {"1": ORDER_SCHEMA})
    listing = signed_in.get("/console/event-type").text
    row = listing.split("order.paid</code>", 1)[1].split("</tr>", 1)[0]
    assert "An order paid" in row
    assert "active" in row
    assert "<td>yes</td>" in row

    # An application made in the console gets it offered in its endpoint form.
    app_id = signed_in.post("/api/v1/app", json={"name": "Shop"}, headers=API).json()["id"]
    assert 'name="event_types" value="order.paid"' in signed_in.get(f"/console/app/{app_id}").text

    page = html.unescape(signed_in.get("/console/event-type/order.paid").text)
    assert '"required": [' in page  # the schema, in the edit form, examples and all
    newer = {"type": "object", "examples": [{"id": 8}]}
    edit = {"csrf_token": token, "description": "Paid in full", "json_schema": json.dumps(newer)}
    signed_in.post("/console/event-type/order.paid", data=edit)
    stored = signed_in.get("/api/v1/event-type/order.paid", headers=API).json()
    assert (stored["description"], stored["schemas"]) == ("Paid in full", {"1": newer})
    signed_in.post("/console/event-type/order.paid", data=edit | {"json_schema": ""})
    assert signed_in.get("/api/v1/event-type/order.paid", headers=API).json()["schemas"] is None

    archived = signed_in.post("/console/event-type/order.paid/archived", data={"csrf_token": token, "archived": "true"})
    assert "Event type archived" in archived.text
    assert signed_in.get("/api/v1/event-type/order.paid", headers=API).json()["archived"] is True
    assert 'value="order.paid"' not in signed_in.get(f"/console/app/{app_id}").text
    assert "archived" in signed_in.get("/console/event-type").text.split("order.paid</code>", 1)[1].split("</tr>")[0]
    signed_in.post("/console/event-type/order.paid/archived", data={"csrf_token": token, "archived": "false"})
    assert signed_in.get("/api/v1/event-type/order.paid", headers=API).json()["archived"] is False

    confirm = signed_in.get("/console/event-type/order.paid/delete")
    assert "Delete this event type?" in confirm.text
    assert signed_in.get("/api/v1/event-type/order.paid", headers=API).status_code == 200
    deleted = signed_in.post("/console/event-type/order.paid/delete", data={"csrf_token": token})
    assert "Event type deleted." in deleted.text
    assert signed_in.get("/api/v1/event-type/order.paid", headers=API).status_code == 404
    assert signed_in.get("/console/event-type/order.paid").status_code == 404


def test_a_bad_event_type_form_is_a_page_saying_why(signed_in: TestClient) -> None:
    token = _token(signed_in)
    cases = [
        ({"name": "order.paid", "json_schema": '{"type": "object",}'}, "not valid JSON (Expecting property name"),
        ({"name": "order.paid", "json_schema": '{"type": "objekt"}'}, "version 1 is not a valid JSON Schema at type"),
        ({"name": "order.paid", "json_schema": "[1, 2]"}, "version 1: a JSON Schema is an object"),
        ({"name": "order paid"}, "name: String should match pattern"),
        ({"name": ""}, "name: String should have at least 1 character"),
    ]
    for form, why in cases:
        answer = signed_in.post("/console/event-type", data={"csrf_token": token, "description": ""} | form)
        assert answer.status_code == 422, form
        assert why in answer.text, (form, answer.text)
        assert "Traceback" not in answer.text
    assert signed_in.get("/api/v1/event-type", headers=API).json()["data"] == []

    signed_in.post("/console/event-type", data={"csrf_token": token, "name": "order.paid", "description": ""})
    taken = signed_in.post("/console/event-type", data={"csrf_token": token, "name": "order.paid", "description": ""})
    assert taken.status_code == 409
    assert "already exists" in taken.text
    bad_edit = signed_in.post("/console/event-type/order.paid", data={"csrf_token": token, "json_schema": "{"})
    assert bad_edit.status_code == 422
    assert "not valid JSON" in bad_edit.text
    assert signed_in.get("/console/event-type/no.such").status_code == 404


def test_background_tasks_are_listed_filtered_and_shown(signed_in: TestClient) -> None:
    app_id = signed_in.post("/api/v1/app", json={"name": "Shop"}, headers=API).json()["id"]
    endpoint_in = {"url": "http://127.0.0.1:9/hook"}
    endpoint_id = signed_in.post(f"/api/v1/app/{app_id}/endpoint", json=endpoint_in, headers=API).json()["id"]
    recover = signed_in.post(
        f"/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover", json={"since": "2020-01-01T00:00:00Z"}, headers=API
    ).json()
    stats = signed_in.put("/api/v1/stats/usage/event-types", headers=API)
    assert stats.status_code == 202, stats.text
    stats_id = stats.json()["id"]

    listing = signed_in.get("/console/background-task").text
    assert recover["id"] in listing
    assert stats_id in listing
    assert listing.index(stats_id) < listing.index(recover["id"])  # newest first
    row = listing.split(recover["id"], 2)[2].split("</tr>", 1)[0]
    assert "endpoint.recover" in row
    assert "running" in row
    assert f"endpointId: {endpoint_id}" in row

    only_recover = signed_in.get("/console/background-task", params={"status": "", "task": "endpoint.recover"}).text
    assert recover["id"] in only_recover
    assert stats_id not in only_recover
    finished = signed_in.get("/console/background-task", params={"status": "finished", "task": ""}).text
    assert "No background tasks match these filters." in finished

    task_page = signed_in.get(f"/console/background-task/{recover['id']}").text
    assert "endpoint.recover" in task_page
    assert (
        f"&#34;endpointId&#34;: &#34;{endpoint_id}&#34;" in task_page or f'"endpointId": "{endpoint_id}"' in task_page
    )
    assert "cursor" not in task_page
    assert signed_in.get("/console/background-task/bgtask_none").status_code == 404


def test_operational_webhooks_are_managed_as_through_the_api(signed_in: TestClient) -> None:
    path = "/console/operational-webhook"
    page = signed_in.get(path).text
    assert 'name="event_types" value="endpoint.disabled"' in page  # Hookpost's own event types to pick
    token = csrf_token_of(page)
    form = {
        "csrf_token": token,
        "url": "http://127.0.0.1:9/ops",
        "description": "Pager",
        "event_types": ["endpoint.disabled", "message.attempt.exhausted"],
    }
    created = signed_in.post(path, data=form, follow_redirects=False)
    endpoint_id = created.headers["location"].split("/")[-1].split("?")[0]
    api = f"/api/v1/operational-webhook/endpoint/{endpoint_id}"
    stored = signed_in.get(api, headers=API).json()
    assert (stored["url"], stored["description"]) == ("http://127.0.0.1:9/ops", "Pager")
    assert stored["filterTypes"] == ["endpoint.disabled", "message.attempt.exhausted"]
    assert "http://127.0.0.1:9/ops" in signed_in.get(path).text
    # Not an application of the console's: Hookpost's own stays hidden.
    assert "Hookpost operational webhooks" not in signed_in.get("/console/app").text

    here = f"{path}/{endpoint_id}"
    signed_in.post(f"{here}/disabled", data={"csrf_token": token, "disabled": "true"})
    assert signed_in.get(api, headers=API).json()["disabled"] is True
    assert "Enable endpoint" in signed_in.get(here).text
    signed_in.post(f"{here}/disabled", data={"csrf_token": token, "disabled": "false"})
    assert signed_in.get(api, headers=API).json()["disabled"] is False

    before = signed_in.get(f"{api}/secret", headers=API).json()["key"]
    assert before not in signed_in.get(here).text
    shown = signed_in.post(f"{here}/secret", data={"csrf_token": token})
    assert before in shown.text
    assert "<title>Secret of an operational webhook · Hookpost console</title>" in shown.text
    assert signed_in.post(f"{here}/secret").status_code == 403
    signed_in.post(f"{here}/secret/rotate", data={"csrf_token": token})
    after = signed_in.get(f"{api}/secret", headers=API).json()["key"]
    assert after != before

    bad = signed_in.post(path, data={"csrf_token": token, "url": "not a url"})
    assert bad.status_code == 422
    assert "url" in bad.text
    assert "Delete this operational webhook endpoint?" in signed_in.get(f"{here}/delete").text
    signed_in.post(f"{here}/delete", data={"csrf_token": token})
    assert signed_in.get(api, headers=API).status_code == 404
    assert signed_in.get(here).status_code == 404


def _pages(client: TestClient) -> list[str]:
    client.put("/api/v1/event-type/order.paid", json={"description": "x"}, headers=API)
    endpoint = client.post("/api/v1/operational-webhook/endpoint", json={"url": "http://127.0.0.1:9/o"}, headers=API)
    endpoint_id = endpoint.json()["id"]
    return [
        "/console/event-type",
        "/console/event-type/order.paid",
        "/console/event-type/order.paid/delete",
        "/console/background-task",
        "/console/operational-webhook",
        f"/console/operational-webhook/{endpoint_id}",
        f"/console/operational-webhook/{endpoint_id}/delete",
    ]


def test_the_pages_need_signing_in_and_their_forms_a_csrf_token(signed_in: TestClient) -> None:
    paths = _pages(signed_in)
    forms = []
    for path in paths:
        page = signed_in.get(path)
        assert page.status_code == 200, path
        assert_refuses_framing_and_inline_code(page, path)
        forms += [form for form in forms_of(page.text) if form.method == "post" and form.action != "/console/sign-out"]
    assert (
        len({form.action for form in forms}) == 9
    )  # create, edit, archive, delete; create, disable, reveal, rotate, delete
    other_token = WebSessions(ADMIN_TOKEN, 60).csrf_token(WebSessions.new_csrf_nonce())
    for form in forms:
        without = {name: value for name, value in form.fields.items() if name != "csrf_token"}
        for data in (without, without | {"csrf_token": other_token}):
            assert signed_in.post(form.action, data=data, follow_redirects=False).status_code == 403, form.action
    assert signed_in.get("/api/v1/event-type/order.paid", headers=API).json()["archived"] is False

    signed_in.cookies.clear()
    for path in paths:
        answer = signed_in.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/console/sign-in?next=")
    for form in forms:
        assert signed_in.post(form.action, data=form.fields, follow_redirects=False).status_code in (303, 403)
    assert signed_in.get("/api/v1/event-type/order.paid", headers=API).status_code == 200
