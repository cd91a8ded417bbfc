"""The API's per-application rate limit for scoped tokens: 429 with Retry-After beyond it, for that
application alone; per process on the embedded default, shared by every API process through Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from hookpost.app import create_app
from hookpost.settings import Settings
from tests.api.helpers import expect
from tests.conftest import ADMIN_TOKEN
from tests.portal.test_pages import open_link
from tests.support.eventually import eventually
from tests.support.services import REDIS_URL, require

LIMIT = 5
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


def _client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), headers=ADMIN)


@pytest.fixture
def limited(settings: Settings) -> Iterator[TestClient]:
    with _client(settings.model_copy(update={"app_api_rate_limit": LIMIT})) as client:
        yield client


def _app_and_token(client: TestClient, name: str) -> tuple[str, dict[str, str]]:
    app_id = expect(client.post("/api/v1/app", json={"name": name}), 201)["id"]
    token = expect(client.post(f"/api/v1/auth/app-portal-access/{app_id}", json={}), 200)["token"]
    return app_id, {"authorization": f"Bearer {token}"}


def _until_refused(client: TestClient, url: str, headers: dict[str, str], most: int = 200) -> int:
    """Requests until one is refused (the answer's status)."""
    for _ in range(most):
        answer = client.get(url, headers=headers)
        if answer.status_code != 200:
            assert answer.status_code == 429, answer.text
            assert answer.headers["retry-after"] == "1"
            assert answer.json()["code"] == "rate_limited"
            return 429
    return 200


def test_a_burst_beyond_the_limit_is_refused_for_that_application_alone(limited: TestClient) -> None:
    busy, busy_token = _app_and_token(limited, "busy")
    calm, calm_token = _app_and_token(limited, "calm")

    assert _until_refused(limited, f"/api/v1/app/{busy}/endpoint", busy_token) == 429
    # In the same second: another application's token, and the admin, are unaffected.
    assert limited.get(f"/api/v1/app/{calm}/endpoint", headers=calm_token).status_code == 200
    assert limited.get(f"/api/v1/app/{busy}/endpoint").status_code == 200

    # After Retry-After the application is served again.
    def served() -> bool:
        return limited.get(f"/api/v1/app/{busy}", headers=busy_token).status_code == 200

    eventually(served, "the application served again", timeout=5)


def test_portal_sessions_count_with_the_applications_tokens(limited: TestClient) -> None:
    app_id, _ = _app_and_token(limited, "portal")
    access = expect(limited.post(f"/api/v1/auth/app-portal-access/{app_id}", json={}), 200)
    browser = TestClient(limited.app)
    with browser:
        open_link(browser, access["url"])
        for _ in range(200):
            page = browser.get(f"/portal/app/{app_id}")
            if page.status_code != 200:
                break
        assert page.status_code == 429
        assert page.headers["retry-after"] == "1"
        assert "requests per second" in page.text


async def _next_second() -> None:
    await asyncio.sleep(1 - time.time() % 1 + 0.01)  # waiting for the clock, not for readiness


def test_with_redis_the_limit_is_shared_by_every_api_process(settings: Settings) -> None:
    """Two apps over one database and one Redis, as two API processes: one application's window
    holds ``LIMIT`` requests in all, not ``LIMIT`` each."""
    url = require("Redis", REDIS_URL)
    redis.Redis.from_url(url).flushdb()
    shared = settings.model_copy(update={"app_api_rate_limit": LIMIT, "redis_url": url})
    with _client(shared) as first, _client(shared) as second:
        app_id, token = _app_and_token(first, "shared")
        for _ in range(4):  # a loaded machine may stall across a window; then try a fresh one
            asyncio.run(_next_second())
            window = int(time.time())
            statuses = [
                client.get(f"/api/v1/app/{app_id}", headers=token).status_code for client in (first, second) * LIMIT
            ]
            if int(time.time()) == window:
                break
        assert statuses.count(200) == LIMIT, statuses
        assert statuses.count(429) == LIMIT, statuses
