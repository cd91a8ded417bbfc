"""A worker told to stop (SIGTERM, as Kubernetes or systemd do) finishes what it is sending."""

from __future__ import annotations

import time

import httpx

from hookpost.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.support.processes import api_server, celery_worker
from tests.support.receiver import Receiver


def test_sigterm_lets_in_flight_deliveries_finish(settings: Settings, receiver: Receiver) -> None:
    receiver.delays["/slow"] = 3.0
    with (
        api_server(settings) as base_url,
        httpx.Client(base_url=f"{base_url}/api/v1", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as api,
    ):
        app_id = api.post("/app", json={"name": "shutdown"}).json()["id"]
        api.post(f"/app/{app_id}/endpoint", json={"url": receiver.url + "/slow"})
        with celery_worker(settings) as worker:
            msg_id = api.post(f"/app/{app_id}/msg", json={"eventType": "e", "payload": {}}).json()["id"]
            receiver.wait_for(lambda requests: len(requests) == 1, timeout=60)  # the attempt is in flight
            worker.terminate()
            stopped_at = time.monotonic()
            worker.wait(timeout=60)
        # It waited for the receiver's answer and recorded it before exiting.
        assert time.monotonic() - stopped_at < 30
        (attempt,) = api.get(f"/app/{app_id}/attempt/msg/{msg_id}").json()["data"]
        assert (attempt["statusText"], attempt["responseStatusCode"]) == ("success", 200)
        assert worker.returncode == 0
