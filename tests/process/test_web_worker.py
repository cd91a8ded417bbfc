"""The API worker's HTTP protocol at a graceful shutdown, with a real Uvicorn server and a
raw socket client, so the moment of the shutdown is exact rather than a race.

A request a client sends on a keep-alive connection just as the server begins to shut
down must be answered (with ``Connection: close``), not reset: that is what the protocol
in hookpost.process.web_worker changes. The stock protocol is run the same way to show
what it fixes. test_gunicorn_faults.py checks the same under load through Gunicorn.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import Server

from hookpost.process.web_worker import DrainingHttpToolsProtocol
from tests.support.eventually import eventually

DEADLINE = 30.0
KEEPALIVE = 2  # seconds an idle connection is kept open, here and during the shutdown
GET = b"GET /x HTTP/1.1\r\nhost: test\r\n\r\n"
UPGRADE = (
    b"GET /stream HTTP/1.1\r\nhost: test\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
    b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
)


async def hello(scope: dict[str, object], receive: Callable[..., object], send: Callable[..., object]) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})  # type: ignore[misc]
    await send({"type": "http.response.body", "body": b"hello"})  # type: ignore[misc]


@dataclass
class Running:
    server: Server
    port: int
    thread: threading.Thread

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE)

    def begin_shutdown(self, shut_down: Callable[[Server], bool]) -> None:
        self.server.should_exit = True
        eventually(lambda: shut_down(self.server), "the server to shut its connections down", timeout=DEADLINE)


@contextmanager
def uvicorn_server(protocol: type[asyncio.Protocol]) -> Iterator[Running]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = Config(app=hello, http=protocol, lifespan="off", log_level="warning", timeout_keep_alive=KEEPALIVE)
    server = Server(config)
    # A thread is not the main thread, so Uvicorn installs no signal handlers.
    thread = threading.Thread(target=asyncio.run, args=(server.serve(sockets=[listener]),), daemon=True)
    thread.start()
    eventually(lambda: server.started, "the server to start", timeout=DEADLINE)
    try:
        yield Running(server, listener.getsockname()[1], thread)
    finally:
        server.should_exit = True
        server.force_exit = True
        thread.join(DEADLINE)
        listener.close()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (with a content-length) from ``sock``; (0, {}, b"") if it closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return 0, {}, b""
        if not chunk:
            return 0, {}, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        body += sock.recv(65536)
    return int(status_line.split()[1]), headers, body


def draining(server: Server) -> bool:
    connections = list(server.server_state.connections)
    return bool(connections) and all(getattr(c, "draining", False) for c in connections)


def test_a_request_sent_as_the_shutdown_begins_is_answered_with_connection_close() -> None:
    with uvicorn_server(DrainingHttpToolsProtocol) as running, running.connect() as client:
        client.sendall(GET)
        assert read_response(client)[:1] == (200,)  # now idle, kept alive

        running.begin_shutdown(draining)
        client.sendall(GET)  # in flight as the shutdown began

        status, headers, body = read_response(client)
        assert (status, body) == (200, b"hello")
        assert headers["connection"] == "close"
        assert client.recv(1) == b""  # then closed
        running.thread.join(DEADLINE)
        assert not running.thread.is_alive(), "the server did not finish its shutdown"


def test_idle_connections_close_at_their_keepalive_timeout_during_a_shutdown() -> None:
    with uvicorn_server(DrainingHttpToolsProtocol) as running, running.connect() as used, running.connect() as unused:
        used.sendall(GET)
        assert read_response(used)[:1] == (200,)
        eventually(
            lambda: len(running.server.server_state.connections) == 2, "both connections accepted", timeout=DEADLINE
        )

        started = time.monotonic()
        running.begin_shutdown(draining)
        running.thread.join(DEADLINE)

        assert not running.thread.is_alive(), "idle connections held the shutdown up"
        assert time.monotonic() - started < KEEPALIVE + 5
        assert used.recv(1) == b""
        assert unused.recv(1) == b""


def test_a_websocket_upgrade_during_the_shutdown_is_refused_with_503() -> None:
    with uvicorn_server(DrainingHttpToolsProtocol) as running, running.connect() as client:
        client.sendall(GET)
        assert read_response(client)[:1] == (200,)
        running.begin_shutdown(draining)

        client.sendall(UPGRADE)

        status, headers, _ = read_response(client)
        assert (status, headers["connection"]) == (503, "close")


def test_what_uvicorns_own_protocol_does_the_request_is_reset() -> None:
    with uvicorn_server(HttpToolsProtocol) as running, running.connect() as client:
        client.sendall(GET)
        assert read_response(client)[:1] == (200,)

        running.begin_shutdown(lambda server: not server.server_state.connections)  # closed at once
        with suppress(BrokenPipeError, ConnectionResetError):
            client.sendall(GET)

        assert read_response(client) == (0, {}, b"")
