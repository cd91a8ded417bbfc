"""A real HTTP receiver on loopback that records every webhook it is sent.

Tests script its answers (``fail_first``) and wait on what arrived with a deadline,
never a sleep.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    sender: str = ""  # the address the request came from


class _Server(ThreadingHTTPServer):
    # A listen backlog like a production server's (http.server's default is 5): a burst of
    # connections must not be reset by the test's receiver.
    request_queue_size = 128


@dataclass
class Receiver:
    """Answers 200, except for the first ``fail_first`` requests to each path (500), and
    except where ``script`` holds answers for a path: (status, headers) pairs, used in order."""

    fail_first: int = 0
    script: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)  # seconds to think before answering, per path
    requests: list[ReceivedRequest] = field(default_factory=list)
    tls: ssl.SSLContext | None = None  # serves HTTPS with this context when set
    host: str = "127.0.0.1"  # the address it listens on
    most_in_flight: int = 0  # the most requests it was answering at once
    _in_flight: int = 0
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "receiver not started"
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host!s}:{port}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                request = ReceivedRequest(
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    received_at=time.time(),
                    sender=str(self.client_address[0]),
                )
                with receiver._lock:
                    receiver.requests.append(request)
                    seen = sum(1 for r in receiver.requests if r.path == self.path)
                    scripted = receiver.script.get(self.path)
                    answer = scripted.pop(0) if scripted else None
                    receiver._lock.notify_all()
                    receiver._in_flight += 1
                    receiver.most_in_flight = max(receiver.most_in_flight, receiver._in_flight)
                status, headers = answer or (500 if seen <= receiver.fail_first else 200, {})
                if self.path in receiver.delays:
                    time.sleep(receiver.delays[self.path])  # a slow receiver, on purpose
                with receiver._lock:
                    receiver._in_flight -= 1
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"try again")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = _Server((self.host, 0), Handler)
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def received(self, path: str | None = None) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def wait_for(
        self, predicate: Callable[[list[ReceivedRequest]], bool], timeout: float = 30.0
    ) -> list[ReceivedRequest]:
        """Block until ``predicate(requests)`` holds; fail the test at the deadline."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self.requests):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"receiver: condition not met within {timeout}s; got {len(self.requests)} requests"
                    )
                self._lock.wait(remaining)
            return list(self.requests)
