"""An OTLP/HTTP trace receiver that accepts every export and discards it: the collector the
``tracing`` phase's traced stack exports to, costing as little as a collector's intake can.

It answers each ``POST /v1/traces`` with 200 and an empty ``ExportTraceServiceResponse`` (zero
bytes of protobuf), counting exports and their bytes; ``GET /_stats`` returns the counts as JSON.

Run as ``python -m hookpost.bench.otlp_sink PORT``.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_lock = threading.Lock()
_stats = {"exports": 0, "bytes": 0}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the exporter's session reuses its connection

    def do_POST(self) -> None:
        size = int(self.headers.get("content-length", "0"))
        self.rfile.read(size)
        if self.path == "/v1/traces":
            with _lock:
                _stats["exports"] += 1
                _stats["bytes"] += size
            self._answer(200, b"", "application/x-protobuf")
        else:
            self._answer(404, b"", "text/plain")

    def do_GET(self) -> None:
        with _lock:
            body = json.dumps(_stats).encode()
        self._answer(200, body, "application/json")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), _Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
