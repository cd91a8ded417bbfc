"""What the live stream tests run on: a real Hookpost (``hookpost api`` = Gunicorn with
Uvicorn workers, plus a Celery worker) and real WebSocket clients of its stream.

Every wait is on a deadline: clients wait on the events they have received, never sleep.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hookpost.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.support.databases import upgrade_to_head
from tests.support.processes import celery_worker, free_port, running, wait_until_healthy

STARTUP_DEADLINE = 60.0  # a loaded two-core machine imports slowly; healthy returns at once
SPREAD_DEADLINE = 30.0  # for the kernel to hand a connection to a second API worker
Json = dict[str, Any]


@dataclass(frozen=True)
class Stack:
    base_url: str
    settings: Settings

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/api/v1"

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])


@contextmanager
def hookpost_stack(settings: Settings, *, api_workers: int = 2, concurrency: int = 2) -> Iterator[Stack]:
    """``hookpost api --workers N`` and a Celery worker (with beat), both on ``settings``."""
    upgrade_to_head(settings)
    port = free_port()
    api_args = [
        sys.executable, "-m", "hookpost", "api",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(api_workers),
    ]  # fmt: skip
    started = time.monotonic()
    with running(api_args, settings, "api") as api, celery_worker(settings, concurrency=concurrency):
        base_url = f"http://127.0.0.1:{port}"
        wait_until_healthy(base_url, api, timeout=STARTUP_DEADLINE)
        print(f"stack up {time.monotonic() - started:.1f}s")
        yield Stack(base_url, settings)
        stopping = time.monotonic()
    print(f"stack stopped {time.monotonic() - stopping:.1f}s")


def api_client(stack: Stack) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.base_url + "/api/v1",
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
        limits=httpx.Limits(max_connections=8),
    )


async def make_app(api: httpx.AsyncClient, uid: str, endpoint_url: str) -> str:
    """An application with one endpoint for every event; its ``app_`` id."""
    response = await api.post("/app", json={"name": uid, "uid": uid})
    assert response.status_code == 201, response.text
    app_id: str = response.json()["id"]
    response = await api.post(f"/app/{app_id}/endpoint", json={"url": endpoint_url})
    assert response.status_code == 201, response.text
    return app_id


@dataclass
class StreamClient:
    """One WebSocket client of one application's stream, reading in the background unless stalled."""

    app_id: str
    connection: ClientConnection
    hello: Json
    events: list[Json] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)  # events received, by type
    closed: bool = False
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        pid: int = self.hello["pid"]
        return pid

    def start_reading(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.connection:
                event = json.loads(message)
                self.events.append(event)
                self.kinds[event["type"]] += 1
                self._arrived.set()
        except ConnectionClosed:
            pass
        self.closed = True
        self._arrived.set()

    async def wait_for(self, condition: Callable[[StreamClient], bool], *, deadline: float, what: str) -> None:
        """Until ``condition(self)`` holds, or fail at ``deadline`` (``time.monotonic()``)."""
        while not condition(self):
            if self.closed:
                raise AssertionError(f"{what}: closed ({self.connection.close_rcvd}) after {len(self.events)} events")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{what}: not within the deadline; so far {dict(self.kinds)}")
            self._arrived.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def close(self) -> None:
        await self.connection.close()
        if self._reader is not None:
            await self._reader

    def abort(self) -> None:
        """Drop the connection at once, without a closing handshake (for clean-up)."""
        self.connection.transport.abort()


async def open_stream(
    stack: Stack,
    app_ref: str,
    *,
    token: str | None = ADMIN_TOKEN,
    via_query: bool = False,
    headers: dict[str, str] | None = None,
    stalled: bool = False,
) -> ClientConnection:
    """A WebSocket to ``/app/{app_ref}/stream``; the handshake done, nothing read yet.

    A ``stalled`` client stops reading after one buffered message and has the smallest
    receive buffer the kernel allows, so the server soon has to hold what it cannot send.
    """
    url = f"{stack.ws_url}/app/{app_ref}/stream"
    extra = dict(headers or {})
    if token is not None and via_query:
        url += f"?token={quote(token)}"
    elif token is not None:
        extra["authorization"] = f"Bearer {token}"
    options: dict[str, Any] = {
        "additional_headers": extra,
        "proxy": None,
        "open_timeout": 30,
        "ping_interval": None,  # a stalled client must not time itself out
        "compression": None,
        "max_size": None,
    }
    if stalled:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: no window scaling up
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", stack.port))
        options.update(sock=sock, max_queue=1)
    return await connect(url, **options)


async def subscribe(stack: Stack, app_id: str, *, stalled: bool = False) -> StreamClient:
    """A client past its ``stream.hello``: from here on it gets every event of the app."""
    connection = await open_stream(stack, app_id, stalled=stalled)
    hello = json.loads(await asyncio.wait_for(connection.recv(), 30))
    assert hello["type"] == "stream.hello", hello
    assert hello["appId"] == app_id, hello
    client = StreamClient(app_id, connection, hello)
    if not stalled:
        client.start_reading()
    return client


async def subscribe_spread(stack: Stack, app_id: str, count: int) -> list[StreamClient]:
    """``count`` reading clients of the app, served by at least two different API workers.

    Connections are opened a few at a time; when all land on one worker, one is closed and
    another opened, until the kernel hands one to another worker. A worker still starting
    accepts nothing, so this polls against a deadline rather than counting tries.
    """
    clients: list[StreamClient] = []
    opened = 0
    deadline = time.monotonic() + SPREAD_DEADLINE
    while len(clients) < count or len({client.pid for client in clients}) < 2:
        if len(clients) == count:
            assert time.monotonic() < deadline, (
                f"after {opened} connections in {SPREAD_DEADLINE:g}s, every one was served by pid {clients[0].pid}"
            )
            await clients.pop().close()
            await asyncio.sleep(0.05)  # polling interval, bounded by the deadline
        batch = await asyncio.gather(*(subscribe(stack, app_id) for _ in range(count - len(clients))))
        clients += batch
        opened += len(batch)
    return clients


def flood_event(app_id: str, number: int, padding: int) -> str:
    """A large event for the app, of a type of the test's own, published past the API."""
    return json.dumps({"type": "test.flood", "appId": app_id, "n": number, "padding": "x" * padding})


async def read_after_stall(client: StreamClient, expected_total: int, *, deadline: float) -> tuple[int, int, int]:
    """Resume a stalled client: (events received, events reported dropped, close code or 0).

    Reads until what arrived plus what ``stream.lagged`` notices reported dropped accounts
    for all ``expected_total`` events, or until the server closes the connection.
    """
    received = dropped = 0
    while received + dropped < expected_total:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"stalled client: {received} received + {dropped} dropped of {expected_total}"
        try:
            event = json.loads(await asyncio.wait_for(client.connection.recv(), remaining))
        except ConnectionClosed as closed:
            frame = closed.rcvd
            break
        if event["type"] == "stream.lagged":
            assert event["dropped"] > 0, event
            dropped += event["dropped"]
        else:
            assert event.get("appId") == client.app_id, event
            received += 1
    else:
        return received, dropped, 0
    assert frame is not None, "closed without a close frame from the server"
    return received, dropped, frame.code
