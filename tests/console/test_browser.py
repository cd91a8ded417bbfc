"""The console in a real browser (Debian's Chromium, driven by Playwright) against a real
Hookpost: the API under Uvicorn, a Celery worker, and a receiver on loopback.

Every wait is Playwright's own: it polls the page until an expectation holds or its
deadline passes. No sleeps.

Screenshots of the main pages are taken on every run; with HOOKPOST_UPDATE_SCREENSHOTS=1
they are written to docs/ (the docs pages show them), otherwise to the test's temporary folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.conftest import ADMIN_TOKEN
from tests.console.support import HTMX_IDLE, sign_in_by_keyboard
from tests.support.browser import Served, needs_chromium
from tests.support.browser import screenshot as take_screenshot

pytestmark = needs_chromium


Stack = Served
LIVE = "Live: this page updates as deliveries happen"  # not a bare "live" under the heading


def screenshot(page: Page, name: str, tmp_path: Path) -> None:
    take_screenshot(page, f"console-{name}", tmp_path)


def test_operator_follows_a_webhook_from_sign_in_to_resend(stack: Stack, page: Page, tmp_path: Path) -> None:
    base = stack.base_url
    answer = page.goto(f"{base}/console/sign-in")
    assert answer is not None
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    sign_in_by_keyboard(page, base)
    expect(page.get_by_text("ready").first).to_be_visible()
    page.keyboard.press("Tab")  # the first stop skips the navigation
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()

    # An application and an endpoint, made with the console's forms.
    page.get_by_role("link", name="Applications").first.click()
    expect(page.get_by_role("heading", name="Applications")).to_be_visible()
    if not page.get_by_label("Name", exact=True).is_visible():  # open by itself while there are none
        page.get_by_text("New application").click()
    page.get_by_label("Name", exact=True).fill("Acme Store")
    page.get_by_role("button", name="Create application").click()
    expect(page.get_by_role("heading", name="Acme Store")).to_be_visible()
    app_id = page.url.split("/console/app/")[1].split("?")[0]
    page.get_by_label("URL", exact=True).fill(f"{stack.receiver.url}/hook")
    page.get_by_label("Description", exact=True).fill("Order events")
    page.get_by_role("button", name="Create endpoint").click()
    expect(page.get_by_text("Created.")).to_be_visible()
    endpoint_id = page.url.split("/endpoint/")[1].split("?")[0]

    # A message sent through the API appears on the open page, and its delivery with it.
    page.get_by_role("link", name="Acme Store").click()
    expect(page.locator("#live-status")).to_have_text(LIVE)
    sent = stack.api.post(f"/app/{app_id}/msg", json={"eventType": "order.paid", "payload": {"order": 1001}})
    assert sent.status_code == 202
    msg_id = sent.json()["id"]
    messages = page.locator("#messages")
    expect(messages.get_by_role("link", name=msg_id)).to_be_visible()
    expect(page.locator("#endpoints").get_by_text("healthy")).to_be_visible()
    expect(messages.get_by_text("1 success")).to_be_visible()
    screenshot(page, "application", tmp_path)

    # The message: its payload, its status per endpoint, the attempt with what the receiver said.
    messages.get_by_role("link", name=msg_id).click()
    expect(page.get_by_label("Payload JSON")).to_contain_text('"order": 1001')
    expect(page.locator("#destinations").get_by_text("success")).to_be_visible()
    first = page.locator("tr.attempt").first
    expect(first.locator("td.code")).to_have_text("200")
    expect(first.locator("pre.response")).to_have_text("ok")
    screenshot(page, "message", tmp_path)

    # The receiver fails: the next message's failure shows live, then a resend gets through.
    stack.receiver.script["/hook"] = [(503, {})]
    failing = stack.api.post(f"/app/{app_id}/msg", json={"eventType": "order.paid", "payload": {"order": 1002}})
    page.goto(f"{base}/console/app/{app_id}/msg/{failing.json()['id']}")
    expect(page.locator("#live-status")).to_have_text(LIVE)
    attempt = page.locator("tr.attempt").first
    expect(attempt.locator("td.code")).to_have_text("503")
    expect(attempt.locator("pre.response")).to_have_text("try again")
    expect(page.locator("#destinations").get_by_text("pending")).to_be_visible()  # retried in 5 min
    expect(attempt.get_by_text("fail")).to_be_visible()
    page.get_by_role("button", name=f"Resend to {stack.receiver.url}/hook").click()
    expect(page.get_by_text("Resend queued.")).to_be_visible()
    resent = page.locator("tr.attempt").filter(has_text="manual")
    expect(resent.locator("td.code")).to_have_text("200")
    expect(page.locator("#destinations").get_by_text("success")).to_be_visible()

    # The endpoint: its failure run is over; reveal the secret, rotate it, reveal the new one.
    page.goto(f"{base}/console/app/{app_id}/endpoint/{endpoint_id}")
    expect(page.locator("#health")).to_contain_text("healthy")
    page.get_by_role("button", name="Reveal secret").click()
    old_secret = page.get_by_label("Current signing secret").input_value()
    assert old_secret == stack.api.get(f"/app/{app_id}/endpoint/{endpoint_id}/secret").json()["key"]
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_text("Secret rotated.")).to_be_visible()
    page.get_by_role("button", name="Reveal secret").click()
    new_secret = page.get_by_label("Current signing secret").input_value()
    assert new_secret != old_secret
    assert new_secret == stack.api.get(f"/app/{app_id}/endpoint/{endpoint_id}/secret").json()["key"]
    expect(page.get_by_text("The previous secret also signs until")).to_be_visible()
    screenshot(page, "endpoint", tmp_path)

    # The overview counts those three attempts, one of them failed (retries wait 5 minutes).
    page.get_by_role("link", name="Overview").click()
    expect(page.locator("#failure-rate")).to_have_text("33.3 %")
    expect(page.locator("#per-minute")).to_have_text("0.2")
    screenshot(page, "overview", tmp_path)  # with those attempts on its chart
    page.go_back()

    # Every form on the page refuses a post without its CSRF token, though the session is good.
    actions = page.eval_on_selector_all("form[method=post]", "forms => forms.map(form => form.action)")
    assert len(actions) >= 5
    for action in actions:
        assert page.request.post(action, form={"disabled": "true", "url": "http://127.0.0.1:1/"}).status == 403
    assert stack.api.get(f"/app/{app_id}/endpoint/{endpoint_id}").json()["url"] == f"{stack.receiver.url}/hook"

    # Signed out, the console refuses: pages send you to sign in, the live stream closes.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Admin token")).to_be_visible()
    page.goto(f"{base}/console/app/{app_id}")
    expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
    stored = page.evaluate("() => JSON.stringify([{...window.localStorage}, {...window.sessionStorage}])")
    assert ADMIN_TOKEN not in stored
    assert new_secret not in stored


def test_a_gone_endpoint_shows_disabled_and_why(stack: Stack, page: Page, tmp_path: Path) -> None:
    app_id = stack.api.post("/app", json={"name": "Gone Ltd"}).json()["id"]
    stack.receiver.script["/gone"] = [(410, {})]
    endpoint_in = {"url": f"{stack.receiver.url}/gone", "description": "Retired"}
    assert stack.api.post(f"/app/{app_id}/endpoint", json=endpoint_in).status_code == 201
    sign_in_by_keyboard(page, stack.base_url)
    page.goto(f"{stack.base_url}/console/app/{app_id}")
    expect(page.locator("#live-status")).to_have_text(LIVE)
    stack.api.post(f"/app/{app_id}/msg", json={"eventType": "order.paid", "payload": {}})
    row = page.locator("#endpoints tbody tr").first
    expect(row.get_by_text("disabled")).to_be_visible()
    expect(row).to_contain_text("the receiver answered 410 Gone")

    # Readable on a phone: nothing wider than the screen but the tables' own scrolling boxes.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "phone", tmp_path)

    # The filters, by keyboard-reachable form: an event type no message has.
    page.get_by_label("Event types (comma-separated)", exact=True).fill("invoice.sent")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#messages")).to_contain_text("No messages match these filters.")
    page.get_by_label("Event types (comma-separated)", exact=True).fill("order.paid")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#messages tbody tr")).to_have_count(1)
    expect(page.locator("#messages")).to_contain_text("order.paid")


def lines_of(page: Page, selector: str) -> list[int]:
    """How many lines each element matching ``selector`` is laid out on (an inline element has a box per line)."""
    counts: list[int] = page.eval_on_selector_all(
        selector, "found => found.map(element => element.getClientRects().length)"
    )
    return counts


def test_operator_opens_the_portal_then_deletes_an_endpoint_and_the_application(
    stack: Stack, page: Page, tmp_path: Path
) -> None:
    base = stack.base_url
    app_id = stack.api.post("/app", json={"name": "Closing Down Ltd"}).json()["id"]
    hook = f"{stack.receiver.url}/closing"
    endpoint_id = stack.api.post(f"/app/{app_id}/endpoint", json={"url": hook}).json()["id"]
    sent = stack.api.post(f"/app/{app_id}/msg", json={"eventType": "order.paid", "payload": {}})
    assert sent.status_code == 202
    sign_in_by_keyboard(page, base)
    page.goto(f"{base}/console/app/{app_id}")
    expect(page.locator("#live-status")).to_have_text(LIVE)
    expect(page.locator("#messages").get_by_role("link", name=sent.json()["id"])).to_be_visible()

    # The message filters sit above the messages, as on the portal.
    filters = page.get_by_role("search", name="Filter messages").bounding_box()
    table = page.locator("#messages").bounding_box()
    assert filters is not None
    assert table is not None
    assert filters["y"] + filters["height"] <= table["y"]

    # On a phone an id stays whole on its line; the table scrolls in its box instead.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert lines_of(page, "#messages td code") == [1]
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    page.goto(f"{base}/console/app")
    assert set(lines_of(page, "td code")) == {1}
    page.set_viewport_size({"width": 1280, "height": 900})

    # Open the portal: a link minted as the API mints one, shown once, that opens the portal.
    page.goto(f"{base}/console/app/{app_id}")
    page.get_by_role("button", name="Open the portal").click()
    expect(page.get_by_role("heading", name="App portal of Closing Down Ltd")).to_be_visible()
    link = page.get_by_label("Portal link").input_value()
    assert link.startswith(f"{base}/portal#key=hp_app_")
    token = link.split("#key=", 1)[1]
    scoped = httpx.get(f"{base}/api/v1/app/{app_id}/endpoint", headers={"authorization": f"Bearer {token}"})
    assert scoped.status_code == 200
    assert httpx.get(f"{base}/api/v1/app", headers={"authorization": f"Bearer {token}"}).status_code == 403
    assert page.get_by_role("link", name="Open the portal").get_attribute("target") == "_blank"
    portal = page.context.new_page()
    portal.goto(link)
    expect(portal.get_by_role("heading", name="Webhooks of Closing Down Ltd")).to_be_visible()
    expect(portal.get_by_role("link", name=hook)).to_be_visible()
    assert token not in portal.url
    portal.close()

    # Revealing the secret leaves the tab's title as it was.
    page.goto(f"{base}/console/app/{app_id}/endpoint/{endpoint_id}")
    title = page.title()
    assert title.startswith("Endpoint ")
    page.get_by_role("button", name="Reveal secret").click()
    expect(page.get_by_label("Current signing secret")).to_be_visible()
    page.wait_for_function(HTMX_IDLE)  # the title, if changed at all, is changed by then
    assert page.title() == title

    # Deleting asks first, and the forms that delete refuse a post without the CSRF token.
    for action in (f"/console/app/{app_id}/endpoint/{endpoint_id}/delete", f"/console/app/{app_id}/delete"):
        assert page.request.post(f"{base}{action}").status == 403
    assert stack.api.get(f"/app/{app_id}/endpoint/{endpoint_id}").status_code == 200
    page.get_by_role("link", name="Delete endpoint…").click()
    expect(page.get_by_role("heading", name="Delete this endpoint?")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("button", name="Reveal secret")).to_be_visible()
    assert stack.api.get(f"/app/{app_id}/endpoint/{endpoint_id}").status_code == 200
    page.get_by_role("link", name="Delete endpoint…").click()
    page.get_by_role("button", name="Delete endpoint").click()
    expect(page.get_by_text("Endpoint deleted.")).to_be_visible()
    expect(page.locator("#endpoints")).to_contain_text("No endpoints yet.")
    assert stack.api.get(f"/app/{app_id}/endpoint/{endpoint_id}").status_code == 404

    page.get_by_role("link", name="Delete application…").click()
    expect(page.get_by_role("heading", name="Delete this application?")).to_be_visible()
    page.get_by_role("button", name="Delete application").click()
    expect(page.get_by_text("Application deleted.")).to_be_visible()
    expect(page.get_by_role("heading", name="Applications")).to_be_visible()
    assert stack.api.get(f"/app/{app_id}").status_code == 404
    # Its portal link is dead with it.
    assert httpx.get(
        f"{base}/api/v1/app/{app_id}/endpoint", headers={"authorization": f"Bearer {token}"}
    ).status_code in (401, 404)
