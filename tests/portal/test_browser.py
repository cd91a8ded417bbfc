"""The app portal in a real browser (Debian's Chromium, driven by Playwright) against a real
Hookpost: the API under Uvicorn, a Celery worker, and a receiver on loopback.

Links are minted as an operator's product would: with the official Svix client's
``authentication.app_portal_access``. Every wait is Playwright's own. No sleeps.

Screenshots of the main pages are taken on every run; with HOOKPOST_UPDATE_SCREENSHOTS=1
they are written to docs/ (the docs pages show them), otherwise to the test's temporary folder.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy.engine import make_url
from svix.api import AppPortalAccessIn, Svix, SvixOptions

from hookpost.settings import Settings
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.browser import Served, browser_page, needs_chromium, served
from tests.support.browser import screenshot as take_screenshot
from tests.support.processes import free_port

pytestmark = needs_chromium


@dataclass(frozen=True)
class Stack(Served):
    svix: Svix
    settings: Settings
    embedder: str  # the one origin the settings let frame the portal


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The operator's product: on another site than the portal (localhost against 127.0.0.1, both
    # loopback, where Chromium takes Secure cookies over plain HTTP as it does over HTTPS).
    embedder = f"http://localhost:{free_port()}"
    settings = make_settings(
        tmp_path_factory.mktemp("portal"),
        portal_frame_ancestors=embedder,
        portal_product_name="Acme Webhooks",
        portal_accent_color="#b3261e",
    )
    with served(settings) as running:
        svix = Svix(ADMIN_TOKEN, SvixOptions(server_url=running.base_url))
        yield Stack(running.base_url, running.receiver, running.api, svix, settings, embedder)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    with browser_page(tmp_path) as page:
        yield page


@pytest.fixture
def context(page: Page) -> BrowserContext:
    """The watched page's browser: for pages that are meant to log errors."""
    return page.context


def screenshot(page: Page, name: str, tmp_path: Path) -> None:
    take_screenshot(page, f"portal-{name}", tmp_path)


def new_app(stack: Stack, name: str) -> str:
    app_id: str = stack.api.post("/app", json={"name": name}).json()["id"]
    return app_id


def portal_url(stack: Stack, app_id: str, *, read_only: bool = False) -> str:
    """The link an operator's product gets from the official Svix client."""
    return stack.svix.authentication.app_portal_access(app_id, AppPortalAccessIn(read_only=read_only)).url


def unlabelled_fields(page: Page) -> list[str]:
    """The page's fields a screen reader could not name."""
    names: list[str] = page.eval_on_selector_all(
        "input:not([type=hidden]), select, textarea",
        "fields => fields.filter(field => !field.labels.length && !field.getAttribute('aria-label'))"
        ".map(field => field.name)",
    )
    return names


def open_portal(page: Page, url: str, app_name: str) -> None:
    page.goto(url)
    expect(page.get_by_role("heading", name=f"Webhooks of {app_name}")).to_be_visible()
    assert "#" not in page.url, "the key must leave the address bar"
    assert page.evaluate("() => window.history.length") <= 2
    assert "key=" not in page.evaluate("() => document.referrer + window.location.href")


def test_a_customer_adds_an_endpoint_and_follows_its_deliveries(stack: Stack, page: Page, tmp_path: Path) -> None:
    stack.api.put(
        "/event-type/order.paid",
        json={"description": "An order was paid", "schemas": {"1": {"type": "object", "examples": [{"order": 7}]}}},
    )
    stack.api.put("/event-type/order.refunded", json={"description": "An order was refunded"})
    app_id = new_app(stack, "Acme Store")
    other_id = new_app(stack, "Globex")
    other_endpoint = stack.api.post(f"/app/{other_id}/endpoint", json={"url": f"{stack.receiver.url}/globex"})
    other_msg = stack.api.post(
        f"/app/{other_id}/msg", json={"eventType": "order.paid", "payload": {"secret": "globex"}}
    )

    url = portal_url(stack, app_id)
    open_portal(page, url, "Acme Store")
    expect(page.get_by_role("link", name="Acme Webhooks")).to_be_visible()

    # An endpoint, added by keyboard, taking one event type picked from the catalogue.
    page.get_by_label("URL", exact=True).focus()
    page.keyboard.type(f"{stack.receiver.url}/acme")
    page.keyboard.press("Tab")
    page.keyboard.type("Orders")
    page.get_by_role("checkbox", name=re.compile(r"^order\.paid")).check()
    screenshot(page, "add-endpoint", tmp_path)
    assert unlabelled_fields(page) == []
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_text("Created.")).to_be_visible()
    endpoint_id = page.url.split("/endpoint/")[1].split("?")[0]
    made = stack.api.get(f"/app/{app_id}/endpoint/{endpoint_id}").json()
    assert (made["url"], made["description"], made["eventTypes"]) == (
        f"{stack.receiver.url}/acme",
        "Orders",
        ["order.paid"],
    )

    # A message to the application shows up in its open log, delivered, with no reload.
    page.get_by_role("link", name="All endpoints and messages").click()
    expect(page.locator("#live-status")).to_have_text("live")
    page.evaluate("() => { window.notReloaded = true; }")
    sent = stack.api.post(f"/app/{app_id}/msg", json={"eventType": "order.paid", "payload": {"order": 1001}})
    msg_id = sent.json()["id"]
    expect(page.locator("#messages").get_by_text("1 success")).to_be_visible()
    assert page.evaluate("() => window.notReloaded") is True
    expect(page.locator("#messages").get_by_role("link", name=msg_id)).to_be_visible()
    expect(page.locator("#endpoints").get_by_text("healthy")).to_be_visible()
    screenshot(page, "application", tmp_path)

    # The message: its attempt and what the receiver answered; resend it.
    page.locator("#messages").get_by_role("link", name=msg_id).click()
    expect(page.get_by_label("Payload JSON")).to_contain_text('"order": 1001')
    first = page.locator("tr.attempt").first
    expect(first.locator("td.code")).to_have_text("200")
    expect(first.locator("pre.response")).to_have_text("ok")
    page.get_by_role("button", name=f"Resend to {stack.receiver.url}/acme").click()
    expect(page.get_by_text("Resend queued.")).to_be_visible()
    screenshot(page, "message", tmp_path)
    assert unlabelled_fields(page) == []

    # The endpoint: an example sent, the secret revealed and rotated.
    page.goto(f"{stack.base_url}/portal/app/{app_id}/endpoint/{endpoint_id}")
    page.get_by_role("button", name="Send example").click()
    expect(page.get_by_text("Example sent.")).to_be_visible()
    page.get_by_role("button", name="Reveal secret").click()
    secret = page.get_by_label("Current signing secret").input_value()
    assert secret == stack.api.get(f"/app/{app_id}/endpoint/{endpoint_id}/secret").json()["key"]
    assert page.url.endswith("?done=example")  # shown in place, by a POST: no address holds it
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_text("Secret rotated.")).to_be_visible()
    assert stack.api.get(f"/app/{app_id}/endpoint/{endpoint_id}/secret").json()["key"] != secret
    screenshot(page, "endpoint", tmp_path)
    assert unlabelled_fields(page) == []

    # Every form on the page refuses a post without its CSRF token, though the session is good.
    actions = page.eval_on_selector_all("form[method=post]", "forms => forms.map(form => form.action)")
    assert len(actions) >= 6
    for action in actions:
        assert page.request.post(action, form={"disabled": "true", "url": "http://127.0.0.1:1/"}).status == 403
    assert stack.api.get(f"/app/{app_id}/endpoint/{endpoint_id}").json()["url"] == f"{stack.receiver.url}/acme"

    # The other application: its pages answer 404, and nothing of it shows on this one's.
    other_paths = [
        f"/portal/app/{other_id}",
        f"/portal/app/{other_id}/endpoint/{other_endpoint.json()['id']}",
        f"/portal/app/{other_id}/msg/{other_msg.json()['id']}",
        f"/portal/app/{app_id}/msg/{other_msg.json()['id']}",
    ]
    refused = page.context.new_page()  # the same session; its expected 404s are not the watched page's errors
    for path in other_paths:
        answer = refused.goto(stack.base_url + path)
        assert answer is not None
        assert answer.status == 404, path
        expect(refused.get_by_role("heading", name="Not found")).to_be_visible()
    refused.close()
    for path in (
        f"/portal/app/{app_id}",
        f"/portal/app/{app_id}/endpoint/{endpoint_id}",
        f"/portal/app/{app_id}/msg/{msg_id}",
    ):
        page.goto(stack.base_url + path)
        assert "Globex" not in page.content()
        assert "globex" not in page.content()

    # Deleted, it is gone from the list.
    page.goto(f"{stack.base_url}/portal/app/{app_id}/endpoint/{endpoint_id}")
    page.get_by_role("button", name="Delete endpoint").click()
    expect(page.get_by_text("Endpoint deleted.")).to_be_visible()
    expect(page.locator("#endpoints")).to_contain_text("No endpoints yet.")

    # Nothing of the token or the secret is kept by the browser, outside the HttpOnly cookie.
    token = url.split("#key=")[1]
    stored = page.evaluate(
        "() => JSON.stringify([{...window.localStorage}, {...window.sessionStorage}, document.cookie])"
    )
    assert token not in stored
    assert "hookpost_portal" not in stored


def test_a_read_only_portal_has_no_forms_and_reads_on_a_phone(stack: Stack, page: Page, tmp_path: Path) -> None:
    app_id = new_app(stack, "Readers Inc")
    endpoint = stack.api.post(f"/app/{app_id}/endpoint", json={"url": f"{stack.receiver.url}/readers"}).json()
    msg_id = stack.api.post(f"/app/{app_id}/msg", json={"eventType": "order.paid", "payload": {"n": 1}}).json()["id"]
    page.set_viewport_size({"width": 390, "height": 844})
    open_portal(page, portal_url(stack, app_id, read_only=True), "Readers Inc")
    expect(page.get_by_text("read-only")).to_be_visible()
    for path in (
        f"/portal/app/{app_id}",
        f"/portal/app/{app_id}/endpoint/{endpoint['id']}",
        f"/portal/app/{app_id}/msg/{msg_id}",
    ):
        page.goto(stack.base_url + path)
        expect(page.locator("main h1")).to_be_visible()
        expect(page.locator("main form")).to_have_count(0)  # signing out, in the header, is the one form
        expect(page.get_by_role("button", name=re.compile("Add|Save|Delete|Rotate|Resend|Disable|Send"))).to_have_count(
            0
        )
        expect(page.get_by_role("button", name="Reveal secret")).to_have_count(0)
        # Readable on a phone: nothing wider than the screen but the tables' own scrolling boxes.
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), path
    # The filters, formless, by keyboard: Enter in a field; the attempts' status, a link.
    page.goto(f"{stack.base_url}/portal/app/{app_id}")
    expect(page.locator("#messages")).to_contain_text(msg_id)
    page.get_by_label("Event types (comma-separated)", exact=True).fill("invoice.sent")
    page.get_by_label("Event types (comma-separated)", exact=True).press("Enter")
    expect(page.locator("#messages")).to_contain_text("No messages match these filters.")
    assert page.url.endswith("?event_type=invoice.sent")
    page.get_by_role("button", name="Filter").focus()
    page.get_by_label("Event types (comma-separated)", exact=True).fill("order.paid")
    page.get_by_role("button", name="Filter").press("Enter")
    expect(page.locator("#messages")).to_contain_text(msg_id)
    page.goto(f"{stack.base_url}/portal/app/{app_id}/endpoint/{endpoint['id']}")
    statuses = page.get_by_role("navigation", name="Filter attempts by status")
    statuses.get_by_role("link", name="fail").click()
    expect(statuses.get_by_role("link", name="fail")).to_have_attribute("aria-current", "page")
    assert page.url.endswith("?status=fail")
    page.goto(f"{stack.base_url}/portal/app/{app_id}")
    screenshot(page, "phone-read-only", tmp_path)
    # Signing out ends the session: its pages are gone.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("You have signed out")
    after = page.context.new_page()  # not watched: the refusal (401) is logged as a failed load
    answer = after.goto(f"{stack.base_url}/portal/app/{app_id}")
    assert answer is not None
    assert answer.status == 401
    expect(after.locator("main")).to_contain_text("open the portal link you were given again")
    after.close()


def test_an_expired_link_is_refused(stack: Stack, context: BrowserContext) -> None:
    page = context.new_page()  # not watched: the refusals (401) are logged as failed loads
    app_id = new_app(stack, "Late Ltd")
    url = portal_url(stack, app_id)
    database = Path(make_url(stack.settings.database_url).database or "")
    with sqlite3.connect(database) as db:
        db.execute("UPDATE access_token SET expires_at = '2000-01-01 00:00:00.000000' WHERE app_id = ?", (app_id,))
    page.goto(url)
    expect(page.get_by_role("alert")).to_contain_text("This link has expired or is not valid.")
    assert "#" not in page.url
    answer = page.goto(f"{stack.base_url}/portal/app/{app_id}")
    assert answer is not None
    assert answer.status == 401


@contextmanager
def product_page(origin: str, portal_link: str) -> Iterator[str]:
    """The operator's product at ``origin`` (on loopback): a page that embeds the portal link."""
    body = (
        "<!doctype html><title>Product</title><h1>Acme Store: settings, webhooks</h1>"
        f'<iframe src="{portal_link}" title="Webhooks" width="1200" height="760"></iframe>'
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", int(origin.rsplit(":", 1)[1])), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{origin}/settings/webhooks"
    finally:
        server.shutdown()
        server.server_close()


def test_the_portal_works_framed_by_the_allowed_site_only(
    stack: Stack, context: BrowserContext, tmp_path: Path
) -> None:
    """The operator's product (http://localhost:…) frames the portal (http://127.0.0.1:…): another
    site, which gets the portal's cookies only because they are SameSite=None; Secure; Partitioned."""
    assert urlsplit(stack.embedder).hostname != urlsplit(stack.base_url).hostname
    app_id = new_app(stack, "Framed Co")
    stack.api.post(f"/app/{app_id}/endpoint", json={"url": f"{stack.receiver.url}/framed-first"})
    page = context.new_page()  # not watched: the refused frame logs its refusal as an error
    with product_page(stack.embedder, portal_url(stack, app_id)) as product:
        page.goto(product)
        frame = page.frame_locator("iframe")
        expect(frame.get_by_role("heading", name="Webhooks of Framed Co")).to_be_visible()
        expect(frame.locator("#endpoints")).to_contain_text(f"{stack.receiver.url}/framed-first")
        expect(frame.locator("#live-status")).to_have_text("live")
        screenshot(page, "embedded", tmp_path)
        # An action: its form's CSRF cookie and the session cookie both reach the framed portal.
        frame.get_by_text("Add an endpoint").click()
        frame.get_by_label("URL", exact=True).fill(f"{stack.receiver.url}/framed-second")
        frame.get_by_role("button", name="Add endpoint").click()
        expect(frame.get_by_text("Created.")).to_be_visible()
        urls = [endpoint["url"] for endpoint in stack.api.get(f"/app/{app_id}/endpoint").json()["data"]]
        assert f"{stack.receiver.url}/framed-second" in urls
        # The cookies live in the product site's partition: the portal opened on its own has no session.
        alone = page.context.new_page()
        answer = alone.goto(f"{stack.base_url}/portal/app/{app_id}")
        assert answer is not None
        assert answer.status == 401
        alone.close()
    stranger_origin = f"http://localhost:{free_port()}"
    with product_page(stranger_origin, portal_url(stack, app_id)) as stranger:
        page.goto(stranger)
        [refused] = page.main_frame.child_frames
        # The browser refuses to show it: the frame ends on its error page. Its navigation there
        # can be reported after the product page's own load, so wait for it (bounded), not assume it.
        refused.wait_for_url(lambda url: url.startswith("chrome-error://"), wait_until="commit", timeout=15_000)
    headers = httpx.get(f"{stack.base_url}/portal").headers
    assert f"frame-ancestors {stack.embedder};" in headers["content-security-policy"]
    assert stranger_origin not in headers["content-security-policy"]
