"""The destination pages in a real browser (Debian's Chromium, driven by Playwright) against a real
Hookpost: the API under Uvicorn, a Celery worker delivering a FIFO endpoint's batches, a receiver
on loopback. A batch attempt shows on the destination's open page as the worker records it (the
live stream's ``destination.attempt.*`` events). Every wait is Playwright's own. No sleeps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from svix.api import AppPortalAccessIn, Svix, SvixOptions

from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.browser import Served, browser_page, needs_chromium, served

pytestmark = needs_chromium

LIVE = "Live: this page updates as deliveries happen"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # A failed batch is retried after 2 s: the page shows the failure, then the success.
    settings = make_settings(tmp_path_factory.mktemp("destinations"), retry_schedule=[2, 2], poller_settle=0.5)
    with served(settings) as running:
        yield running


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    with browser_page(tmp_path) as page:
        yield page


def test_an_operator_creates_a_fifo_destination_and_watches_its_batches_live(stack: Served, page: Page) -> None:
    app_id = stack.api.post("/app", json={"name": "Acme Store"}).json()["id"]
    page.goto(f"{stack.base_url}/console/sign-in")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    page.goto(f"{stack.base_url}/console/app/{app_id}")
    page.get_by_role("link", name="Destinations").click()
    expect(page.get_by_role("heading", name="Destinations", level=1)).to_be_visible()
    page.get_by_label("Type", exact=True).select_option("fifoEndpoint")
    page.get_by_label("URL", exact=True).fill(f"{stack.receiver.url}/batches")
    page.get_by_label("Uid (optional)").fill("orders-in-order")
    page.get_by_label("Longest wait for a batch to fill, in seconds (empty for 1)").fill("0")
    page.get_by_role("button", name="Create destination").click()
    expect(page.get_by_text("Created.")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("fifoEndpoint orders-in-order"))).to_be_visible()
    expect(page.locator("#live-status")).to_have_text(LIVE)
    expect(page.locator("#destination-attempts")).to_contain_text("No attempts yet.")

    # The receiver fails the first batch: the failure shows, then the retry's success, with no reload.
    stack.receiver.script["/batches"] = [(503, {})]
    sent = [
        stack.api.post(f"/app/{app_id}/msg", json={"eventType": "order.paid", "payload": {"n": n}}).json()["id"]
        for n in range(3)
    ]
    rows = page.locator("#destination-attempts tr.attempt")
    expect(rows.last.locator("td.code")).to_have_text("503")  # the first attempt
    expect(page.locator("#destination-status")).to_contain_text("retrying")
    # The newest attempt: the batch that ends with the last message, delivered.
    expect(rows.first).to_contain_text(f"to {sent[2]}")
    expect(rows.first.locator("td.code")).to_have_text("200")
    expect(page.locator("#destination-status")).to_contain_text("enabled")
    batches = [[item["id"] for item in json.loads(request.body)] for request in stack.receiver.requests]
    once = [batch for index, batch in enumerate(batches) if index == 0 or batch != batches[index - 1]]
    assert [msg_id for batch in once for msg_id in batch] == sent  # the failed batch repeated, in order

    # Its list: type, status, filters, batches, last attempt.
    page.get_by_role("link", name="Destinations").click()
    row = page.locator("#destinations tr", has_text="orders-in-order")
    for shown in ("fifoEndpoint", "enabled", "event types: all", "100 messages, waits 0 s", "success"):
        expect(row).to_contain_text(shown)

    # Rotating shows the new secret once; deleting asks first.
    row.get_by_role("link", name="orders-in-order").click()
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_label(re.compile("Signing secret of"))).to_have_value(re.compile(r"^whsec_"))
    page.get_by_role("link", name="Back to the destination").click()
    page.get_by_role("link", name="Delete destination…").click()
    page.get_by_role("button", name="Delete destination").click()
    expect(page.get_by_text("Destination deleted.")).to_be_visible()
    expect(page.locator("#destinations")).to_contain_text("No destinations yet.")


def test_a_portal_manages_its_own_destinations_and_never_opens_anothers(stack: Served, page: Page) -> None:
    mine = stack.api.post("/app", json={"name": "Initech"}).json()["id"]
    other = stack.api.post("/app", json={"name": "Globex"}).json()["id"]
    theirs = stack.api.post(
        f"/app/{other}/destination", json={"type": "fifoEndpoint", "config": {"url": f"{stack.receiver.url}/globex"}}
    ).json()["id"]
    svix = Svix(ADMIN_TOKEN, SvixOptions(server_url=stack.base_url))
    page.goto(svix.authentication.app_portal_access(mine, AppPortalAccessIn()).url)
    expect(page.get_by_role("heading", name="Webhooks of Initech")).to_be_visible()
    page.get_by_role("link", name="Destinations").click()
    page.get_by_label("Type", exact=True).select_option("pollingEndpoint")
    page.get_by_role("button", name="Create destination").click()
    expect(page.get_by_text("Created.")).to_be_visible()
    page.get_by_role("button", name="Disable destination").click()
    expect(page.get_by_text("Destination disabled.")).to_be_visible()
    expect(page.locator("#destination-status")).to_contain_text("disabled")

    # Another application's destination, by its own path or under this one's: not found.
    context = page.context.new_page()  # an error page logs its 404: not the watched page
    for path in (f"/portal/app/{other}/destination/{theirs}", f"/portal/app/{mine}/destination/{theirs}"):
        answer = context.goto(f"{stack.base_url}{path}")
        assert answer is not None
        assert answer.status == 404, path
        expect(context.locator("body")).not_to_contain_text("Globex")
    context.close()
    assert stack.api.get(f"/app/{other}/destination/{theirs}").json()["status"] == "enabled"
