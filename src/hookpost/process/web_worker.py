"""The Gunicorn worker of ``hookpost api``: uvicorn-worker's, with a graceful shutdown that
loses no request a client has already sent.

Uvicorn's graceful shutdown (the master's SIGTERM when Gunicorn stops or reloads on SIGHUP,
or a worker reaching ``max_requests``) closes every idle keep-alive connection at once.
Idle is the server's view only: the client may have sent its next request on that
connection a moment earlier, still unread in the socket buffer. The close makes the kernel
answer it with a reset, and the client (or nginx, which does not retry a POST) sees a
request it had sent fail. tests/process/test_gunicorn_faults.py saw about one such failure
per reload under load before this class.

Here a shutdown leaves an idle connection open until its keep-alive timeout (Gunicorn's
``keepalive``, 5 s by default), and answers every request that arrives after the shutdown
began with ``Connection: close``: a client with a request in flight gets its answer, then
reconnects to a new worker (reload) or to nothing (stop). A WebSocket upgrade asked for
during the shutdown gets a 503 rather than a connection that would hold the worker up.
The shutdown takes at most ``keepalive`` seconds longer, well inside ``graceful_timeout``.

The parser stays httptools and the loop uvloop: the protocol below is uvicorn's httptools
protocol with two methods changed (uvicorn's version is pinned exactly, and the fault tests
run against it).
"""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]

_DRAINING_UPGRADE_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 20\r\nconnection: close\r\n\r\nServer shutting down"
)


class DrainingHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol whose graceful shutdown serves requests already on the wire."""

    draining = False

    def shutdown(self) -> None:
        self.draining = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # uvicorn's own behaviour for a busy connection
        elif self.timeout_keep_alive_task is None:
            # Idle and never asked anything yet: no keep-alive timer runs to close it.
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )
        # Otherwise idle after an answer: its keep-alive timer closes it, as in normal work.

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.draining and self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # answered with Connection: close

    def handle_websocket_upgrade(self) -> None:
        if self.draining:
            self.transport.write(_DRAINING_UPGRADE_ANSWER)
            self.transport.close()
            return
        super().handle_websocket_upgrade()


class WebWorker(UvicornWorker):  # type: ignore[misc]
    """``uvicorn_worker.UvicornWorker`` (uvloop) speaking HTTP through the protocol above."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {"loop": "auto", "http": DrainingHttpToolsProtocol}
    sockets: list[Any]  # set by Gunicorn's Worker

    def run(self) -> None:
        # The listening sockets themselves, not Gunicorn's wrappers of them: at shutdown uvloop
        # closes a listener's descriptor, then the socket object it was given, and ignores
        # the EBADF that follows; a wrapper catches it first and logs "Error while closing
        # socket [Errno 9] Bad file descriptor" from every worker at every stop.
        self.sockets = [listener.sock for listener in self.sockets]
        super().run()
