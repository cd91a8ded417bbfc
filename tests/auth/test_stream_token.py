"""An open live stream outlives neither its app portal token's logout nor its expiry.

A real server (Uvicorn on loopback) and a real WebSocket client, so every wait is bounded.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hookpost.settings import Settings
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import upgrade_to_head
from tests.support.processes import api_server

CHECK_EVERY = 0.5  # HOOKPOST_STREAM_TOKEN_CHECK_INTERVAL for this module's server
DEADLINE = 15.0  # the check interval, on a loaded machine, with room to spare


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = make_settings(tmp_path_factory.mktemp("stream-token"), stream_token_check_interval=CHECK_EVERY)
    upgrade_to_head(settings)
    return settings


@pytest.fixture(scope="module")
def base_url(server_settings: Settings) -> Iterator[str]:
    with api_server(server_settings) as url:
        yield url


@pytest.fixture
async def admin(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=DEADLINE) as client:
        yield client


async def _app_and_token(admin: httpx.AsyncClient) -> tuple[str, str]:
    app_id: str = (await admin.post("/api/v1/app", json={"name": "streamed"})).json()["id"]
    response = await admin.post(f"/api/v1/auth/app-portal-access/{app_id}", json={})
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return app_id, token


@asynccontextmanager
async def _stream(base_url: str, app_id: str, token: str) -> AsyncIterator[ClientConnection]:
    url = base_url.replace("http://", "ws://") + f"/api/v1/app/{app_id}/stream"
    async with connect(url, additional_headers={"authorization": f"Bearer {token}"}, open_timeout=DEADLINE) as ws:
        assert '"stream.hello"' in str(await asyncio.wait_for(ws.recv(), DEADLINE))
        yield ws


async def _drain(ws: ClientConnection) -> None:
    while True:
        await asyncio.wait_for(ws.recv(), DEADLINE)


async def _closed_code(ws: ClientConnection) -> int | None:
    """The close code the server sends, waiting at most DEADLINE; fails if it keeps streaming."""
    with pytest.raises(ConnectionClosed) as closed:
        await _drain(ws)
    return None if closed.value.rcvd is None else closed.value.rcvd.code


async def test_logging_the_token_out_closes_its_open_stream(base_url: str, admin: httpx.AsyncClient) -> None:
    app_id, token = await _app_and_token(admin)

    async with _stream(base_url, app_id, token) as revoked, _stream(base_url, app_id, ADMIN_TOKEN) as kept:
        logout = await admin.post("/api/v1/auth/logout", headers={"authorization": f"Bearer {token}"})
        assert logout.status_code == 204

        assert await _closed_code(revoked) == 4401
        # The admin's stream of the same application carries on.
        await admin.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "still.here", "payload": {}})
        assert '"still.here"' in str(await asyncio.wait_for(kept.recv(), DEADLINE))


async def test_an_expired_tokens_open_stream_is_closed(
    base_url: str, admin: httpx.AsyncClient, server_settings: Settings
) -> None:
    app_id, token = await _app_and_token(admin)

    async with _stream(base_url, app_id, token) as ws:
        database = Path(make_url(server_settings.database_url).database or "")
        with sqlite3.connect(database) as db:  # as if its expiry had come: minting allows an hour at least
            db.execute("UPDATE access_token SET expires_at = '2000-01-01 00:00:00.000000' WHERE app_id = ?", (app_id,))

        assert await _closed_code(ws) == 4401
