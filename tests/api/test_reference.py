"""/docs and /redoc in a real browser with the internet cut off: every request that does not go to
loopback is aborted, so a page that needs a CDN stays blank and the test fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from tests.conftest import make_settings
from tests.support.browser import browser_page, needs_chromium
from tests.support.databases import upgrade_to_head
from tests.support.processes import api_server

pytestmark = needs_chromium

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
REDOC_CREDIT_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = make_settings(tmp_path_factory.mktemp("reference"))
    upgrade_to_head(settings)
    with api_server(settings) as url:
        yield url


@pytest.fixture
def offline_page(tmp_path: Path) -> Iterator[tuple[Page, list[str]]]:
    """A page whose requests off loopback are aborted (and listed)."""
    refused: list[str] = []

    def only_loopback(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOOPBACK or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    with browser_page(tmp_path) as page:
        page.context.route("**/*", only_loopback)
        yield page, refused


def test_swagger_ui_renders_the_operations_offline(base_url: str, offline_page: tuple[Page, list[str]]) -> None:
    page, refused = offline_page
    page.goto(f"{base_url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Hookpost")
    create_message = page.locator(".opblock-post .opblock-summary-path", has_text="/api/v1/app/{app_id}/msg")
    expect(create_message.first).to_be_visible()
    assert page.locator(".opblock").count() > 40
    assert refused == []


def test_redoc_renders_offline(base_url: str, offline_page: tuple[Page, list[str]]) -> None:
    watched, refused = offline_page
    # ReDoc's sidebar credit always asks its vendor's CDN for a logo and hides the image when that
    # fails; the failed load is logged, so this page is not the watched one. Script errors still count.
    page = watched.context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base_url}/redoc")
    expect(page.locator("h1", has_text="Hookpost")).to_be_visible()
    expect(page.get_by_role("menuitem", name="Message", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="List Messages").first).to_be_attached()
    expect(page.get_by_text("API docs by Redocly")).to_be_visible()
    assert errors == []
    assert set(refused) <= {REDOC_CREDIT_LOGO}
