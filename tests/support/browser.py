"""A real browser for the page tests: Debian's Chromium, driven by Playwright.

Browsers cannot be downloaded here, so Playwright drives /usr/bin/chromium through
``executable_path``. Every wait is Playwright's own (it polls until an expectation holds or
its deadline passes). A page's console errors (a CSP violation, a script error) fail the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect, sync_playwright

from hookpost.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.support.databases import upgrade_to_head
from tests.support.processes import api_server, celery_worker
from tests.support.receiver import Receiver

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEADLINE_MS = 30_000  # for a delivery to show: a loaded two-core machine is slow
DOCS = Path(__file__).resolve().parents[2] / "docs"

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and os.environ.get("CI") != "true",
    reason="needs Debian's chromium (apt-get install chromium); .ci/run installs it",
)

expect.set_options(timeout=DEADLINE_MS)


@contextmanager
def browser_context(profile: Path) -> Iterator[BrowserContext]:
    """A fresh browser profile: no cookies, nothing stored."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@contextmanager
def watched_page(context: BrowserContext) -> Iterator[Page]:
    """The context's page; on leaving, fails if the page logged an error or threw."""
    page = context.pages[0] if context.pages else context.new_page()
    problems: list[str] = []

    def note(message: ConsoleMessage) -> None:
        # A CSP violation or a script error is a broken page even when the test's checks pass.
        if message.type == "error" and "WebSocket" not in message.text:
            problems.append(message.text)

    page.on("console", note)
    page.on("pageerror", lambda error: problems.append(str(error)))
    yield page
    assert problems == [], problems


@contextmanager
def browser_page(tmp_path: Path) -> Iterator[Page]:
    """A watched page (see ``watched_page``) in a fresh profile under ``tmp_path``; its
    ``.context`` opens unwatched pages, for what is meant to log an error."""
    with browser_context(tmp_path / "profile") as context, watched_page(context) as page:
        yield page


@dataclass(frozen=True)
class Served:
    """A Hookpost for a browser to drive: the API under Uvicorn, a Celery worker, and a receiver on loopback."""

    base_url: str
    receiver: Receiver
    api: httpx.Client  # its API, as the admin


@contextmanager
def served(settings: Settings) -> Iterator[Served]:
    upgrade_to_head(settings)
    with (
        Receiver() as receiver,
        celery_worker(settings),
        api_server(settings) as base_url,
        httpx.Client(base_url=f"{base_url}/api/v1", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as api,
    ):
        yield Served(base_url, receiver, api)


def screenshot(page: Page, name: str, tmp_path: Path) -> None:
    """Into docs/ with HOOKPOST_UPDATE_SCREENSHOTS=1 (the docs pages show them), else the test's folder."""
    target = DOCS if os.environ.get("HOOKPOST_UPDATE_SCREENSHOTS") == "1" else tmp_path
    page.screenshot(path=target / f"{name}.png", full_page=True)
