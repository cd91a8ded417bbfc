"""Console sign-in throttled per client address, through the real sign-in form: after
HOOKPOST_CONSOLE_SIGN_IN_FAILURES wrong tokens in the window, 429 with Retry-After for that
address (the right token too), while another address still signs in. Before, 60 wrong
tokens got 60 answers of 401 in 0.1 s."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from hookpost.app import create_app
from hookpost.settings import Settings
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.console.support import sign_in
from tests.support.databases import upgrade_to_head
from tests.support.processes import free_port, running, wait_until_healthy

FAILURES = 3
WINDOW = 600


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path, console_sign_in_failures=FAILURES, console_sign_in_window=WINDOW)
    upgrade_to_head(settings)
    return settings


def _assert_throttled(answer: httpx.Response) -> None:
    assert answer.status_code == 429, answer.text
    assert 0 < int(answer.headers["retry-after"]) <= WINDOW
    assert "Too many wrong tokens" in answer.text


def test_wrong_tokens_from_one_address_are_throttled(settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app, client=("198.51.100.7", 40000)) as guesser:
        assert [sign_in(guesser, "wrong").status_code for _ in range(FAILURES)] == [401] * FAILURES
        _assert_throttled(sign_in(guesser, "wrong"))
        _assert_throttled(sign_in(guesser, ADMIN_TOKEN))  # says nothing of a guess while throttled
    with TestClient(app, client=("198.51.100.8", 40000)) as operator:
        assert sign_in(operator, ADMIN_TOKEN).status_code == 303


@pytest.fixture
def api_behind_a_proxy(settings: Settings) -> Iterator[str]:
    """``hookpost api`` with two Gunicorn workers; requests from loopback are a trusted proxy's
    (FORWARDED_ALLOW_IPS' default), so X-Forwarded-For names the client."""
    port = free_port()
    args = [sys.executable, "-m", "hookpost", "api", "--workers", "2", "--port", str(port)]
    with running(args, settings, "api") as process:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_healthy(base_url, process, timeout=120)
        yield base_url


def test_the_forwarded_address_is_throttled_across_processes(api_behind_a_proxy: str) -> None:
    def client(address: str) -> httpx.Client:
        # A new connection per request: the requests spread over both workers.
        return httpx.Client(
            base_url=api_behind_a_proxy,
            headers={"x-forwarded-for": address, "connection": "close"},
            timeout=30,
        )

    with client("203.0.113.7") as guesser:
        assert [sign_in(guesser, "wrong").status_code for _ in range(FAILURES)] == [401] * FAILURES
        _assert_throttled(sign_in(guesser, "wrong"))
        _assert_throttled(sign_in(guesser, ADMIN_TOKEN))
    with client("203.0.113.8") as operator:
        assert sign_in(operator, ADMIN_TOKEN).status_code == 303
