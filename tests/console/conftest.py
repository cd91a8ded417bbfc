"""The console's fixtures: a signed-in client in process, and a served Hookpost with a browser page
(each browser test module gets its own Hookpost, so one module's attempts never show in another's figures)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page

from hookpost.app import create_app
from hookpost.settings import Settings
from tests.conftest import make_settings
from tests.console.support import sign_in
from tests.support.browser import Served, browser_page, served


@pytest.fixture
def browser(settings: Settings) -> Iterator[TestClient]:
    """A client with no token: it has only what a browser would, cookies."""
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def signed_in(browser: TestClient) -> TestClient:
    assert sign_in(browser).status_code == 303
    return browser


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # A failed attempt is retried only after 5 minutes: the resend in the test is the next attempt.
    with served(make_settings(tmp_path_factory.mktemp("console"), retry_schedule=[0, 300])) as running:
        yield running


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    with browser_page(tmp_path) as page:
        yield page
