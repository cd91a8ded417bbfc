"""Receivers that misbehave, on loopback: each ends in a precise error, bounded in time."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import pytest

from hookpost.delivery.sender import AttemptResult, create_http_client, post_webhook
from tests.support.receiver import Receiver

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]
LIMIT = 4096


@contextmanager
def raw_server(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP server on loopback whose every connection is handed to ``handle``."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=_handle_and_close, args=(handle, connection), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def _handle_and_close(handle: Callable[[socket.socket], None], connection: socket.socket) -> None:
    with connection, suppress(OSError):
        handle(connection)


def _read_request(connection: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)


def send(port: int, *, allowed: list[ipaddress.IPv4Network] | None = None, time_limit: float = 5.0) -> AttemptResult:
    async def attempt() -> AttemptResult:
        async with create_http_client(1.0, LOOPBACK if allowed is None else allowed) as client:
            return await post_webhook(client, f"http://127.0.0.1:{port}/hook", "{}", {}, LIMIT, time_limit)

    return asyncio.run(attempt())


def test_connection_refused() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]  # bound, never listening: the kernel refuses
        result = send(port)
    assert (result.status_code, result.error) == (0, "connection refused")


def test_connect_timeout_when_the_receiver_never_accepts() -> None:
    # A listener with a full backlog that never accepts: loopback SYNs go unanswered.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        try:
            result = send(port)
        finally:
            for filler in fillers:
                filler.close()
    assert result.error == "connect timeout"


def test_read_timeout_when_the_receiver_never_answers() -> None:
    def silent(connection: socket.socket) -> None:
        _read_request(connection)
        while connection.recv(65536):  # read the rest, answer nothing, until the client gives up
            pass

    with raw_server(silent) as port:
        result = send(port)
    assert result.error is not None
    assert result.error.startswith("read timeout")
    assert 900 <= result.duration_ms < 3000


def test_a_slow_drip_body_is_cut_at_the_attempt_deadline() -> None:
    stop = threading.Event()

    def drip(connection: socket.socket) -> None:
        _read_request(connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
        while not stop.wait(0.3):  # a byte at a time, each well inside the read timeout
            connection.sendall(b"x")

    with raw_server(drip) as port:
        result = send(port, time_limit=2.0)
        stop.set()
    assert result.error is not None
    assert result.error.startswith("timeout")
    assert result.duration_ms < 3000


def test_reset_mid_response() -> None:
    def reset(connection: socket.socket) -> None:
        _read_request(connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    with raw_server(reset) as port:
        result = send(port)
    assert result.status_code == 0
    assert result.error in {"connection reset mid-response"} or result.error.startswith("connection closed")


def test_a_huge_response_is_read_only_up_to_the_limit() -> None:
    sent = threading.Event()

    def huge(connection: socket.socket) -> None:
        _read_request(connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 10000000\r\n\r\n")
        chunk = b"y" * 65536
        try:
            for _ in range(10_000_000 // len(chunk)):
                connection.sendall(chunk)
        except OSError:
            sent.set()  # the client hung up after reading its share

    with raw_server(huge) as port:
        result = send(port)
    assert result.succeeded
    assert result.response == "y" * LIMIT
    assert sent.wait(5), "the client read the whole 10 MB"


def test_redirects_are_failures_and_not_followed() -> None:
    requests = []

    def redirect(connection: socket.socket) -> None:
        _read_request(connection)
        requests.append(1)
        connection.sendall(b"HTTP/1.1 301 Moved\r\nlocation: http://127.0.0.1:1/elsewhere\r\ncontent-length: 0\r\n\r\n")

    with raw_server(redirect) as port:
        result = send(port)
    assert (result.status_code, result.succeeded, result.error) == (301, False, "HTTP 301")
    assert len(requests) == 1


def test_tls_failure() -> None:
    def plain_http(connection: socket.socket) -> None:
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    async def attempt(port: int) -> AttemptResult:
        async with create_http_client(1.0, LOOPBACK) as client:
            return await post_webhook(client, f"https://127.0.0.1:{port}/", "{}", {}, LIMIT, 5.0)

    with raw_server(plain_http) as port:
        result = asyncio.run(attempt(port))
    assert result.error is not None
    assert result.error.startswith("TLS failure")


def test_dns_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    # Forced: a real failed lookup would query the machine's resolver, off loopback.
    async def no_such_host(*_: object, **__: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", no_such_host)

    async def attempt() -> AttemptResult:
        async with create_http_client(1.0, LOOPBACK) as client:
            return await post_webhook(client, "http://receiver.example/hook", "{}", {}, LIMIT, 5.0)

    assert asyncio.run(attempt()).error == "DNS failure: receiver.example: Name or service not known"


def test_a_disallowed_address_is_refused_before_any_connection() -> None:
    connections = []
    with raw_server(connections.append) as port:
        result = send(port, allowed=[ipaddress.ip_network("10.0.0.0/8")])
    assert result.error is not None
    assert result.error.startswith("destination refused: 127.0.0.1 resolves to 127.0.0.1")
    assert connections == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_receivers_cookies_are_never_sent_back(host: str) -> None:
    """One pooled client serves every endpoint: a cookie one receiver sets must not reach it
    (or another endpoint on that host, perhaps another customer's) with later deliveries."""
    receiver = Receiver(script={"/first": [(200, {"set-cookie": "session=abc; Path=/"})]})
    with receiver:
        base = receiver.url.replace("127.0.0.1", host)

        async def two_deliveries() -> None:
            async with create_http_client(1.0, LOOPBACK) as client:
                for path in ("/first", "/second"):
                    result = await post_webhook(client, base + path, "{}", {}, LIMIT, 5.0)
                    assert result.succeeded, result.error

        asyncio.run(two_deliveries())
    assert [request.path for request in receiver.requests] == ["/first", "/second"]
    assert "cookie" not in receiver.requests[1].headers
