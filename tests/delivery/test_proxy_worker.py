"""HOOKPOST_PROXY_URL in a real worker: the setting reaches the delivery client, a proxy that is
down makes failed attempts that are retried, and once it is up the webhook arrives, signed,
through it. Its password appears in no response and no log line of the API or the worker.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks import Webhook

from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import upgrade_to_head
from tests.support.eventually import eventually
from tests.support.processes import api_server, celery_worker, free_port
from tests.support.proxies import tinyproxy, tinyproxy_binary
from tests.support.receiver import Receiver

PASSWORD = "pw-" + secrets.token_hex(8)
DEADLINE = 120.0  # generous: a loaded machine starts a worker slowly; each wait is a poll that ends at once


def test_a_worker_retries_while_the_proxy_is_down_then_delivers_through_it(tmp_path: Path) -> None:
    tinyproxy_binary()  # skips (or fails under CI) before any process starts
    proxy_port = free_port()  # nothing listens there until the proxy starts, later
    settings = make_settings(
        tmp_path,
        proxy_url=f"http://hookpost:{PASSWORD}@127.0.0.1:{proxy_port}",
        retry_schedule=[0, 1, 1, 1, 1, 1, 1, 1],
        scheduler_interval=0.5,
    )
    upgrade_to_head(settings)
    with (
        Receiver() as receiver,
        celery_worker(settings, concurrency=1),
        api_server(settings) as base_url,
        httpx.Client(base_url=f"{base_url}/api/v1", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as api,
    ):
        port = int(receiver.url.rsplit(":", 1)[1])
        app_id = api.post("/app", json={"name": "Proxied"}).json()["id"]
        made = api.post(f"/app/{app_id}/endpoint", json={"url": f"http://localhost:{port}/hook"})
        assert made.status_code == 201, made.text
        secret = api.get(f"/app/{app_id}/endpoint/{made.json()['id']}/secret").json()["key"]
        sent = api.post(f"/app/{app_id}/msg", json={"eventType": "user.created", "payload": {"n": 1}})
        assert sent.status_code == 202, sent.text
        msg_id = sent.json()["id"]

        def attempts() -> list[dict[str, Any]]:
            listed: list[dict[str, Any]] = api.get(f"/app/{app_id}/attempt/msg/{msg_id}").json()["data"]
            return listed

        failed = eventually(lambda: next(iter(attempts()), None), "a first attempt", timeout=DEADLINE)
        assert failed["responseStatusCode"] == 0
        dead = f"http://127.0.0.1:{proxy_port}"
        assert failed["error"] == f"proxy failure: the proxy {dead} is unreachable: connection refused"
        assert receiver.received() == []

        with tinyproxy(tmp_path, credentials=("hookpost", PASSWORD), port=proxy_port) as proxy:
            [request] = receiver.wait_for(lambda requests: len(requests) >= 1, timeout=DEADLINE)
            Webhook(secret).verify(request.body, request.headers)
            assert request.headers["host"] == f"localhost:{port}"
            assert proxy.targets() == [f"127.0.0.1:{port}"]
            succeeded = eventually(
                lambda: next((a for a in attempts() if a["responseStatusCode"] == 200), None),
                "the attempt through the proxy recorded",
                timeout=DEADLINE,
            )
        assert succeeded["error"] is None
        shown = api.get(f"/app/{app_id}/attempt/msg/{msg_id}").text
        assert PASSWORD not in shown
    for log in ("worker.log", "api.log"):
        assert PASSWORD not in (settings.data_dir / log).read_text(errors="replace"), log
