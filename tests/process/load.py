"""A bounded HTTP load from a process of its own, for the Gunicorn fault tests.

``python load.py BASE_URL TOKEN APP_ID OUT [--concurrency N] [--requests N] [--seconds S]``

Each of ``--concurrency`` threads sends ``POST {BASE_URL}/api/v1/app/{APP_ID}/msg`` in a
loop over its own keep-alive connection (httpx, as the Svix SDKs use), until ``--requests``
have been started in all or ``--seconds`` have passed. SIGTERM or SIGINT means "stop now":
no request starts after it, those in flight finish, then the process exits 0.

Every request becomes one JSON line in OUT, written as it ends::

    {"start": 12.3, "end": 12.35, "status": 202, "error": null}

``start`` and ``end`` are ``time.monotonic()``, which on Linux is the system-wide
CLOCK_MONOTONIC, so the test compares them with the moment it sent a signal.
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import httpx

REQUEST_TIMEOUT = 120.0  # above a worker boot on a loaded machine (a reload waits for one); still bounded


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("token")
    parser.add_argument("app_id")
    parser.add_argument("out", type=Path)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()

    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    numbers = itertools.count()
    numbers_lock = threading.Lock()
    out_lock = threading.Lock()
    deadline = time.monotonic() + args.seconds
    url = f"/api/v1/app/{args.app_id}/msg"

    with args.out.open("a", buffering=1) as out:

        def record(entry: dict[str, object]) -> None:
            with out_lock:
                out.write(json.dumps(entry) + "\n")

        def sender() -> None:
            with httpx.Client(
                base_url=args.base_url,
                headers={"authorization": f"Bearer {args.token}"},
                timeout=REQUEST_TIMEOUT,
                limits=httpx.Limits(max_connections=1),
            ) as client:
                while not stop.is_set() and time.monotonic() < deadline:
                    with numbers_lock:
                        number = next(numbers)
                    if number >= args.requests:
                        return
                    body = {"eventType": "load.tick", "payload": {"n": number}}
                    start = time.monotonic()
                    status: int | None = None
                    error: str | None = None
                    try:
                        status = client.post(url, json=body).status_code
                    except httpx.HTTPError as exc:
                        error = f"{type(exc).__name__}: {exc}"
                    record({"start": start, "end": time.monotonic(), "status": status, "error": error})

        threads = [threading.Thread(target=sender, daemon=True) for _ in range(args.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
