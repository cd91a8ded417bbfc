"""The console's event type, operational webhook and background task pages, and the overview's
chart, in Chromium against a real Hookpost (the fixtures of tests/console/conftest.py).

Screenshots as in test_browser.py: into docs/ with HOOKPOST_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from tests.console.support import HTMX_IDLE, sign_in_by_keyboard
from tests.support.browser import DEADLINE_MS, Served, needs_chromium
from tests.support.browser import screenshot as take_screenshot

pytestmark = needs_chromium

SCHEMA = {"type": "object", "required": ["invoice"], "examples": [{"invoice": "inv_1"}]}


def screenshot(page: Page, name: str, tmp_path: Path) -> None:
    take_screenshot(page, f"console-{name}", tmp_path)


def nav(page: Page, name: str) -> Locator:
    """A link of the console's navigation (a page may link to the same place again)."""
    return page.get_by_role("navigation", name="Console").get_by_role("link", name=name)


def reload_until_visible(page: Page, locator: Locator) -> None:
    """For a page that does not update by itself: reload it until ``locator`` shows, or the deadline passes."""
    deadline = time.monotonic() + DEADLINE_MS / 1000
    while locator.count() == 0:
        assert time.monotonic() < deadline, f"{locator} did not show"
        page.reload()
    expect(locator.first).to_be_visible()


def test_operator_keeps_the_event_type_catalogue(stack: Served, page: Page, tmp_path: Path) -> None:
    base = stack.base_url
    sign_in_by_keyboard(page, base)
    nav(page, "Event types").click()
    expect(page.get_by_role("heading", name="Event types", level=1)).to_be_visible()
    expect(page.locator("#event-types")).to_contain_text("No event types yet")

    # A schema that is not JSON is refused (422) with a page saying where, and nothing is created;
    # in a tab of its own, as the browser logs the 422 as an error.
    refused = page.context.new_page()
    refused.goto(page.url)
    refused.get_by_label("Name", exact=True).fill("invoice.paid")
    refused.get_by_label("JSON Schema (optional)").fill('{"type": "object",}')
    refused.get_by_role("button", name="Create event type").click()
    expect(refused.get_by_role("alert")).to_contain_text("not valid JSON (Expecting property name")
    refused.close()
    assert stack.api.get("/event-type/invoice.paid").status_code == 404
    page.get_by_label("Name", exact=True).fill("invoice.paid")
    page.get_by_label("Description", exact=True).fill("An invoice was paid")
    page.get_by_label("JSON Schema (optional)").fill(json.dumps(SCHEMA, indent=2))
    page.get_by_role("button", name="Create event type").click()
    expect(page.get_by_text("Created.")).to_be_visible()
    expect(page.get_by_role("heading", name="invoice.paid")).to_be_visible()
    assert stack.api.get("/event-type/invoice.paid").json()["schemas"] == {"1": SCHEMA}

    # An application made in the console filters on it, picked from the catalogue.
    nav(page, "Applications").click()
    if not page.get_by_label("Name", exact=True).is_visible():
        page.get_by_text("New application").click()
    page.get_by_label("Name", exact=True).fill("Ledger Ltd")
    page.get_by_role("button", name="Create application").click()
    app_id = page.url.split("/console/app/")[1].split("?")[0]
    page.get_by_label("URL", exact=True).fill(f"{stack.receiver.url}/ledger")
    page.get_by_label("invoice.paid").check()
    page.get_by_role("button", name="Create endpoint").click()
    expect(page.get_by_text("Created.")).to_be_visible()
    endpoint_id = page.url.split("/endpoint/")[1].split("?")[0]
    assert stack.api.get(f"/app/{app_id}/endpoint/{endpoint_id}").json()["eventTypes"] == ["invoice.paid"]

    # Edit, archive and bring back, then delete after the confirmation page.
    nav(page, "Event types").click()
    page.get_by_role("link", name="invoice.paid").click()
    page.get_by_label("Description", exact=True).fill("An invoice was paid in full")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    expect(page.get_by_label("Description", exact=True)).to_have_value("An invoice was paid in full")
    page.get_by_role("button", name="Archive event type").click()
    expect(page.get_by_text("Event type archived")).to_be_visible()
    expect(page.locator("#state")).to_have_text("archived")
    nav(page, "Event types").click()
    expect(page.locator("#event-types tbody tr").filter(has_text="invoice.paid")).to_contain_text("archived")
    screenshot(page, "event-types", tmp_path)
    page.get_by_role("link", name="invoice.paid").click()
    page.get_by_role("button", name="Unarchive event type").click()
    expect(page.locator("#state")).to_have_text("active")
    screenshot(page, "event-type", tmp_path)
    page.get_by_role("link", name="Delete event type…").click()
    expect(page.get_by_role("heading", name="Delete this event type?")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()
    assert stack.api.get("/event-type/invoice.paid").status_code == 200
    page.get_by_role("link", name="Delete event type…").click()
    page.get_by_role("button", name="Delete event type").click()
    expect(page.get_by_text("Event type deleted.")).to_be_visible()
    assert stack.api.get("/event-type/invoice.paid").status_code == 404


def test_operator_sets_up_an_operational_webhook_and_follows_its_deliveries(
    stack: Served, page: Page, tmp_path: Path
) -> None:
    base = stack.base_url
    sign_in_by_keyboard(page, base)
    nav(page, "Operational webhooks").click()
    expect(page.get_by_role("heading", name="Operational webhooks", level=1)).to_be_visible()
    page.get_by_label("URL", exact=True).fill(f"{stack.receiver.url}/ops")
    page.get_by_label("Description", exact=True).fill("On-call pager")
    page.get_by_label("endpoint.created").check()
    page.get_by_role("button", name="Create operational webhook endpoint").click()
    expect(page.get_by_text("Created.")).to_be_visible()
    expect(page.get_by_text("Event types: endpoint.created")).to_be_visible()

    # An endpoint made anywhere is an endpoint.created event, delivered to it and shown as an attempt.
    app_id = stack.api.post("/app", json={"name": "Watched"}).json()["id"]
    stack.api.post(f"/app/{app_id}/endpoint", json={"url": f"{stack.receiver.url}/watched"})
    stack.receiver.wait_for(lambda received: any(request.path == "/ops" for request in received))
    reload_until_visible(page, page.locator("tr.attempt td.code").filter(has_text="200"))
    event = json.loads(stack.receiver.received("/ops")[0].body)
    assert event["type"] == "endpoint.created"

    # Disable and enable; reveal the secret (the tab keeps its title), rotate it.
    page.get_by_role("button", name="Disable endpoint").click()
    expect(page.get_by_text("Endpoint disabled.")).to_be_visible()
    page.get_by_role("button", name="Enable endpoint").click()
    expect(page.get_by_text("Endpoint enabled.")).to_be_visible()
    title = page.title()
    assert title.startswith("Operational webhook ")
    page.get_by_role("button", name="Reveal secret").click()
    secret = page.get_by_label("Current signing secret").input_value()
    page.wait_for_function(HTMX_IDLE)
    assert page.title() == title
    endpoint_id = page.url.split("/operational-webhook/")[1].split("?")[0]
    assert secret == stack.api.get(f"/operational-webhook/endpoint/{endpoint_id}/secret").json()["key"]
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_text("Secret rotated.")).to_be_visible()
    assert secret != stack.api.get(f"/operational-webhook/endpoint/{endpoint_id}/secret").json()["key"]
    screenshot(page, "operational-webhook", tmp_path)

    page.get_by_role("link", name="Delete operational webhook endpoint…").click()
    expect(page.get_by_role("heading", name="Delete this operational webhook endpoint?")).to_be_visible()
    page.get_by_role("button", name="Delete operational webhook endpoint").click()
    expect(page.get_by_text("Endpoint deleted.")).to_be_visible()
    expect(page.locator("#operational-endpoints")).to_contain_text("No operational webhook endpoints yet.")
    assert stack.api.get(f"/operational-webhook/endpoint/{endpoint_id}").status_code == 404


def test_operator_follows_a_recover_in_the_background_tasks(stack: Served, page: Page, tmp_path: Path) -> None:
    base = stack.base_url
    app_id = stack.api.post("/app", json={"name": "Recovering"}).json()["id"]
    endpoint_id = stack.api.post(f"/app/{app_id}/endpoint", json={"url": f"{stack.receiver.url}/r"}).json()["id"]
    sign_in_by_keyboard(page, base)
    page.goto(f"{base}/console/app/{app_id}/endpoint/{endpoint_id}")
    page.get_by_label("Re-send messages that failed since (UTC)").fill("2020-01-01T00:00:00")
    page.get_by_role("button", name="Recover").click()
    expect(page.get_by_text("Recovery started.")).to_be_visible()
    task_id = page.url.split("task=")[1]

    nav(page, "Background tasks").click()
    row = page.locator("#tasks tbody tr").filter(has_text=task_id)
    expect(row).to_contain_text("endpoint.recover")
    # The task's page follows it until the scheduler has finished it.
    row.get_by_role("link", name=task_id).click()
    expect(page.locator("#task-status")).to_have_text("finished")
    expect(page.get_by_label("Task result JSON")).to_contain_text(f'"endpointId": "{endpoint_id}"')
    nav(page, "Background tasks").click()
    page.get_by_label("Status").select_option("finished")
    page.get_by_label("Kind").select_option("endpoint.recover")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#tasks tbody tr")).to_have_count(1)
    expect(page.locator("#tasks")).to_contain_text(task_id)
    screenshot(page, "background-tasks", tmp_path)
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#tasks")).to_contain_text("No background tasks match these filters.")

    # The overview's chart has its scale and its times.
    nav(page, "Overview").click()
    expect(page.locator("#y-axis text").first).to_have_text("0")
    expect(page.locator("#y-axis")).to_contain_text("attempts / min")
    expect(page.locator("#x-axis text")).to_have_count(5)  # four times and the axis's label
    expect(page.locator("#x-axis")).to_contain_text("time (UTC)")
