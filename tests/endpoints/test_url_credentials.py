"""Credentials in an endpoint's URL: stored encrypted, shown masked (API, console, portal,
attempts), kept across edits that send them back masked, and sent as HTTP Basic auth to a
real receiver on loopback; the 0008 migration moves them out of rows that held them in clear."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from hookpost.app import create_app
from hookpost.delivery.context import DeliveryContext
from hookpost.kit.ids import new_id
from hookpost.kit.secret_box import PREFIX, SecretBox
from hookpost.settings import Settings
from hookpost.storage.migrate import alembic_config, upgrade_to_head
from hookpost.storage.models import Delivery
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, make_settings
from tests.console.support import csrf_token_of, sign_in
from tests.support.databases import fresh_postgres_database
from tests.support.delivery import deliver, delivery_context
from tests.support.receiver import Receiver

PASSWORD = "s3cr%40t-pass"  # percent-encoded "@": Basic auth carries it decoded
CLEAR_PASSWORD = "s3cr@t-pass"


def _raw(settings: Settings, query: str) -> str:
    async def read() -> str:
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.connect() as connection:
                return json.dumps([list(row) for row in await connection.execute(text(query))], default=str)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def _endpoint(client: TestClient, app_id: str, url: str) -> dict[str, Any]:
    answer = client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": url})
    assert answer.status_code == 201, answer.text
    endpoint: dict[str, Any] = answer.json()
    return endpoint


def test_credentials_are_stored_encrypted_and_shown_masked(client: TestClient, settings: Settings) -> None:
    app_id = client.post("/api/v1/app", json={"name": "creds"}).json()["id"]
    endpoint = _endpoint(client, app_id, f"https://hook-user:{PASSWORD}@hooks.example.com/in")
    at = f"/api/v1/app/{app_id}/endpoint/{endpoint['id']}"

    assert endpoint["url"] == "https://hook-user:***@hooks.example.com/in"
    assert client.get(at).json()["url"] == endpoint["url"]
    raw = _raw(settings, "SELECT url, url_credentials FROM endpoint")
    assert "s3cr" not in raw
    assert "hook-user:***@" in raw
    assert PREFIX in raw

    # The console and the portal (read-only included) show the URL as the API does.
    assert sign_in(client).status_code == 303
    console = client.get(f"/console/app/{app_id}/endpoint/{endpoint['id']}")
    assert "hook-user:***@hooks.example.com" in console.text
    assert "s3cr" not in console.text
    for read_only in (False, True):
        link = client.post(f"/api/v1/auth/app-portal-access/{app_id}", json={"readOnly": read_only}).json()["url"]
        with TestClient(create_app(settings)) as browser:
            path, _, key = link.removeprefix("http://testserver").partition("#key=")
            page = browser.get(path)
            opened = browser.post("/portal/session", data={"token": key, "csrf_token": csrf_token_of(page.text)})
            assert opened.status_code == 200, opened.text
            shown = browser.get(f"/portal/app/{app_id}/endpoint/{endpoint['id']}").text
            assert "hook-user:***@hooks.example.com" in shown
            assert "s3cr" not in shown


def test_an_edit_that_sends_the_url_back_masked_keeps_the_password(client: TestClient, settings: Settings) -> None:
    app_id = client.post("/api/v1/app", json={"name": "edits"}).json()["id"]
    endpoint = _endpoint(client, app_id, f"https://hook-user:{PASSWORD}@hooks.example.com/in")
    at = f"/api/v1/app/{app_id}/endpoint/{endpoint['id']}"

    def stored() -> str:
        return _raw(settings, "SELECT url_credentials FROM endpoint")

    before = stored()
    # PUT back what GET answered, and PATCH the description: the credentials stay as they were.
    assert client.put(at, json=client.get(at).json()).status_code == 200
    assert client.patch(at, json={"url": endpoint["url"], "description": "x"}).status_code == 200
    assert stored() == before
    # Masked under another user name, or on a new endpoint: nothing to keep, so refused.
    other_user = client.patch(at, json={"url": "https://someone:***@hooks.example.com/in"})
    assert other_user.status_code == 422
    assert "masked" in other_user.json()["detail"][0]["msg"]
    masked_new = client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": endpoint["url"]})
    assert masked_new.status_code == 422
    # New credentials replace them; a URL without any drops them.
    assert client.patch(at, json={"url": "https://new-user:other@hooks.example.com/in"}).json()["url"] == (
        "https://new-user:***@hooks.example.com/in"
    )
    assert stored() != before
    assert (
        client.patch(at, json={"url": "https://hooks.example.com/in"}).json()["url"] == "https://hooks.example.com/in"
    )
    assert stored() == "[[null]]"


@pytest.fixture
async def context(settings: Settings) -> AsyncIterator[DeliveryContext]:
    async with delivery_context(settings) as context:
        yield context


async def test_credentials_are_sent_as_basic_auth_and_the_attempt_shows_them_masked(
    client: TestClient, context: DeliveryContext, receiver: Receiver
) -> None:
    """Before, both clients refused a URL with credentials beside an Authorization header: never delivered."""
    app_id = client.post("/api/v1/app", json={"name": "basic"}).json()["id"]
    url = receiver.url.replace("http://", f"http://hook-user:{PASSWORD}@") + "/basic"
    endpoint = _endpoint(client, app_id, url)
    headers = client.patch(
        f"/api/v1/app/{app_id}/endpoint/{endpoint['id']}/headers", json={"headers": {"X-Custom": "kept"}}
    )
    assert headers.status_code == 204, headers.text
    msg_id = client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "e", "payload": {}}).json()["id"]
    async with context.sessionmaker() as session:
        delivery_id = await session.scalar(select(Delivery.id).where(Delivery.msg_id == msg_id))
    assert delivery_id is not None

    await deliver(context, delivery_id)

    (received,) = receiver.received("/basic")
    expected = base64.b64encode(f"hook-user:{CLEAR_PASSWORD}".encode()).decode()
    sent = {name.lower(): value for name, value in received.headers.items()}
    assert sent["authorization"] == f"Basic {expected}"
    assert sent["x-custom"] == "kept"
    (attempt,) = client.get(f"/api/v1/app/{app_id}/attempt/msg/{msg_id}").json()["data"]
    assert attempt["status"] == 0, attempt
    assert attempt["url"] == receiver.url.replace("http://", "http://hook-user:***@") + "/basic"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """A database at 0007, the schema before credentials left the URLs."""
    if request.param == "sqlite":
        settings = make_settings(tmp_path)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        command.upgrade(alembic_config(settings), "0007")
        yield settings
        return
    with fresh_postgres_database() as url:
        settings = make_settings(tmp_path, database_url=url)
        command.upgrade(alembic_config(settings), "0007")
        yield settings


# An id of an id's shape: a path's application is found by id only when it looks like one.
OLD_APP_ID = new_id("app")
_ROWS = [
    statement.replace("{app}", OLD_APP_ID)
    for statement in (
        "INSERT INTO application (id, name, metadata, created_at, updated_at) "
        "VALUES ('{app}', 'Old', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        "INSERT INTO endpoint (id, app_id, url, description, disabled, metadata, headers, secret, created_at, "
        "updated_at) VALUES (:endpoint, '{app}', :url, '', false, '{}', :headers, :secret, CURRENT_TIMESTAMP, "
        "CURRENT_TIMESTAMP)",
        "INSERT INTO message (id, app_id, event_type, payload, created_at) "
        "VALUES ('msg_1', '{app}', 'e', '{}', CURRENT_TIMESTAMP)",
        "INSERT INTO delivery (id, app_id, msg_id, endpoint_id, status, trigger_type, attempt_count, created_at, "
        "updated_at) VALUES (:delivery, '{app}', 'msg_1', :endpoint, 2, 0, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        "INSERT INTO attempt (id, app_id, msg_id, endpoint_id, delivery_id, url, status, trigger_type, "
        "response_status_code, response, response_duration_ms, created_at) VALUES (:attempt, '{app}', 'msg_1', "
        ":endpoint, :delivery, :url, 2, 0, 0, '', 1, CURRENT_TIMESTAMP)",
    )
]


def test_the_migration_moves_credentials_out_of_stored_urls(old_settings: Settings) -> None:
    settings = old_settings
    with_credentials = f"https://hook-user:{PASSWORD}@hooks.example.com/in"
    plain = "https://hooks.example.com/plain"

    async def insert_old_rows() -> None:
        engine = create_async_engine(settings.database_url)
        async with engine.begin() as connection:
            for n, url in enumerate([with_credentials, plain]):
                ids = {"endpoint": f"ep_{n}", "delivery": f"dlv_{n}", "attempt": f"atmpt_{n}"}
                box = SecretBox([SECRET_KEY])
                values = {**ids, "url": url, "headers": box.encrypt("{}"), "secret": box.encrypt("whsec_x")}
                for statement in _ROWS if n == 0 else _ROWS[1:2] + _ROWS[3:]:
                    await connection.execute(text(statement), values)
        await engine.dispose()

    asyncio.run(insert_old_rows())
    assert "s3cr" in _raw(settings, "SELECT url FROM attempt")

    upgrade_to_head(settings)

    assert "s3cr" not in _raw(settings, "SELECT url, url_credentials FROM endpoint")
    assert "s3cr" not in _raw(settings, "SELECT url FROM attempt")
    command.check(alembic_config(settings))
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        endpoints = client.get(f"/api/v1/app/{OLD_APP_ID}/endpoint").json()["data"]
        assert sorted(endpoint["url"] for endpoint in endpoints) == [
            "https://hook-user:***@hooks.example.com/in",
            plain,
        ]
        attempts = client.get(f"/api/v1/app/{OLD_APP_ID}/attempt/msg/msg_1").json()["data"]
        assert sorted(attempt["url"] for attempt in attempts) == ["https://hook-user:***@hooks.example.com/in", plain]

    # And back: the endpoint's URL holds its credentials again.
    command.downgrade(alembic_config(settings), "0007")
    assert with_credentials in _raw(settings, "SELECT url FROM endpoint")
