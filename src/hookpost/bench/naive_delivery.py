"""Naive delivery: what a team writes from a tutorial, the bench's lower reference for delivery.

A Celery task per message (``send_webhook.delay(url, body)``), prefork with its default
concurrency, ``httpx.post`` inside, signed like Hookpost signs; the same broker as the
Hookpost processes it is compared with (its own queue), no database.

    python -m celery --app hookpost.bench.naive_delivery:app worker   # the worker
    python -m hookpost.bench.naive_delivery enqueue URL COUNT         # the backlog
    python -m hookpost.bench.naive_delivery purge                     # what is left of it

It reads ``HOOKPOST_BROKER_URL`` and ``HOOKPOST_DATA_DIR`` like Hookpost does.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from celery import Celery

from hookpost.bench.limit_sender import SECRET
from hookpost.delivery.signing import webhook_headers
from hookpost.kit.ids import new_id

QUEUE = "bench-naive"


def _create_app() -> Celery:
    broker_url = os.environ.get("HOOKPOST_BROKER_URL", "filesystem://")
    options: dict[str, Any] = {}
    if broker_url.startswith("filesystem://"):
        # Kombu's own filesystem transport, in folders of its own beside Hookpost's broker.
        folder = Path(os.environ.get("HOOKPOST_DATA_DIR", ".")) / "naive-broker"
        (folder / "processed").mkdir(parents=True, exist_ok=True)
        options = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "processed_folder": str(folder / "processed"),
            "polling_interval": 0.05,  # as Hookpost's; kombu's default second would be the bottleneck
        }
    celery = Celery("naive", broker=broker_url)
    celery.conf.update(
        broker_transport_options=options,
        broker_connection_retry_on_startup=True,
        task_default_queue=QUEUE,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
    )
    return celery


app = _create_app()


@app.task(name="naive.send_webhook")  # type: ignore[untyped-decorator]
def send_webhook(url: str, body: str) -> int:
    headers = webhook_headers(new_id("msg"), datetime.now(UTC), body, [SECRET])
    response = httpx.post(url, content=body, headers=headers, timeout=15)
    response.raise_for_status()
    return response.status_code


def main() -> None:
    command = sys.argv[1]
    if command == "enqueue":
        url, count = sys.argv[2], int(sys.argv[3])
        body = Path(sys.argv[4]).read_text() if len(sys.argv) > 4 else "{}"
        for _ in range(count):
            send_webhook.delay(url, body)
    elif command == "purge":
        app.control.purge()
    else:
        raise SystemExit(f"unknown command {command!r}: enqueue URL COUNT [BODY_FILE] | purge")


if __name__ == "__main__":
    main()
