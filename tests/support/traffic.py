"""Client traffic for outage tests: writers that keep posting messages, a deadline poll, and
a reader of a process's JSON log that counts what it said while something was down."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN

AUTH = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Outcome:
    status: int  # 0: no HTTP answer at all
    seconds: float
    msg_id: str | None = None
    retry_after: str | None = None


class Writer:
    """Posts messages from a few threads, as clients would, recording every answer."""

    def __init__(self, base_url: str, app_id: str, timeout: float, verify: ssl.SSLContext | bool = True) -> None:
        self.app_id = app_id
        self.url = f"{base_url}/api/v1/app/{app_id}/msg"
        self.outcomes: list[Outcome] = []
        self._timeout = timeout
        self._verify = verify
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _run(self) -> None:
        with httpx.Client(headers=AUTH, timeout=self._timeout, verify=self._verify) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = client.post(self.url, json={"eventType": "order.paid", "payload": {"n": 1}})
                except httpx.TransportError:
                    outcome = Outcome(0, time.monotonic() - started)
                else:
                    outcome = Outcome(
                        response.status_code,
                        time.monotonic() - started,
                        response.json().get("id") if response.status_code == 202 else None,
                        response.headers.get("retry-after"),
                    )
                with self._lock:
                    self.outcomes.append(outcome)
                self._stop.wait(0.05)  # pacing: about 20 messages a second per thread

    @property
    def accepted(self) -> list[str]:
        with self._lock:
            return [outcome.msg_id for outcome in self.outcomes if outcome.msg_id]

    def answers_since(self, index: int) -> list[Outcome]:
        with self._lock:
            return self.outcomes[index:]

    @contextmanager
    def running(self, threads: int) -> Iterator[None]:
        pool = ThreadPoolExecutor(threads)
        futures = [pool.submit(self._run) for _ in range(threads)]
        try:
            yield
        finally:
            self._stop.set()
            for future in futures:
                future.result(timeout=30)
            pool.shutdown()


class JsonLog:
    """A process's log of one JSON object per line (``HOOKPOST_LOG_FORMAT=json``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        """Where the log ends now: read from here to see only what comes after."""
        return self.path.stat().st_size if self.path.exists() else 0

    def records(self, start: int = 0, end: int | None = None) -> list[dict[str, Any]]:
        with self.path.open("rb") as log:
            log.seek(start)
            data = log.read() if end is None else log.read(end - start)
        found = []
        for line in data.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                record = {"level": "RAW", "message": line.decode(errors="replace")}  # not ours: counted too
            if isinstance(record, dict):
                found.append(record)
        return found

    def complaints(self, start: int = 0, end: int | None = None) -> list[dict[str, Any]]:
        """Warnings and worse, and any line that is not a JSON record (a bare traceback)."""
        return [r for r in self.records(start, end) if r.get("level") in {"WARNING", "ERROR", "CRITICAL", "RAW"}]
