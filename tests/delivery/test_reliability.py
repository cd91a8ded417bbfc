"""Endpoint protection and recovery on real parts (embedded SQLite + filesystem broker, a
real Celery worker with its scheduler, the API under Uvicorn, a receiver on loopback)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from hookpost.settings import Settings
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import upgrade_to_head
from tests.support.eventually import eventually
from tests.support.processes import api_server, celery_worker
from tests.support.receiver import Receiver

SCHEDULE = [0, 0.3, 0.3, 0.3]  # four attempts within about a second


@pytest.fixture(scope="module")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = make_settings(
        tmp_path_factory.mktemp("reliability"),
        retry_schedule=SCHEDULE,
        disable_after=2.0,
        retry_after_max=3.0,
        delivery_timeout=5.0,
        lease_seconds=20.0,
    )
    upgrade_to_head(settings)
    return settings


@pytest.fixture(scope="module")
def api(stack_settings: Settings) -> Iterator[httpx.Client]:
    with (
        celery_worker(stack_settings),
        api_server(stack_settings) as base_url,
        httpx.Client(base_url=f"{base_url}/api/v1", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def make_endpoint(api: httpx.Client, url: str, **fields: object) -> tuple[str, str]:
    app_id = api.post("/app", json={"name": "reliability"}).json()["id"]
    response = api.post(f"/app/{app_id}/endpoint", json={"url": url, **fields})
    assert response.status_code == 201, response.text
    return app_id, response.json()["id"]


def send(api: httpx.Client, app_id: str, event_type: str = "thing.happened") -> str:
    response = api.post(f"/app/{app_id}/msg", json={"eventType": event_type, "payload": {"at": time.time()}})
    assert response.status_code == 202, response.text
    msg_id: str = response.json()["id"]
    return msg_id


def attempts(api: httpx.Client, app_id: str, msg_id: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = api.get(f"/app/{app_id}/attempt/msg/{msg_id}").json()["data"]
    return list(reversed(data))  # oldest first


def test_410_gone_disables_the_endpoint_at_once(api: httpx.Client, receiver: Receiver) -> None:
    receiver.script["/gone"] = [(410, {})]
    app_id, endpoint_id = make_endpoint(api, receiver.url + "/gone")
    msg_id = send(api, app_id)

    endpoint = eventually(
        lambda: (ep := api.get(f"/app/{app_id}/endpoint/{endpoint_id}").json())["disabled"] and ep,
        "the endpoint disabled",
        timeout=30.0,
    )
    assert "410" in endpoint["disabledReason"]
    assert [
        a["responseStatusCode"]
        for a in eventually(lambda: attempts(api, app_id, msg_id), "the attempts recorded", timeout=30.0)
    ] == [410]
    (destination,) = api.get(f"/app/{app_id}/msg/{msg_id}/endpoint").json()["data"]
    assert (destination["statusText"], destination["nextAttempt"]) == ("fail", None)


def test_retry_after_is_honoured_over_a_shorter_schedule(api: httpx.Client, receiver: Receiver) -> None:
    receiver.script["/busy"] = [(503, {"retry-after": "2"})]
    app_id, _ = make_endpoint(api, receiver.url + "/busy")
    send(api, app_id)

    first, second = receiver.wait_for(lambda requests: len([r for r in requests if r.path == "/busy"]) >= 2)[-2:]
    gap = second.received_at - first.received_at
    assert 2.0 <= gap < 2.0 + 1.5, f"retried after {gap:.2f}s; schedule says 0.3s, Retry-After 2s"


def test_retry_after_beyond_the_maximum_is_capped(api: httpx.Client, receiver: Receiver) -> None:
    receiver.script["/slow-down"] = [(429, {"retry-after": "86400"})]
    app_id, _ = make_endpoint(api, receiver.url + "/slow-down")
    send(api, app_id)

    first, second = receiver.wait_for(lambda requests: len([r for r in requests if r.path == "/slow-down"]) >= 2)[-2:]
    assert 3.0 <= second.received_at - first.received_at < 3.0 + 1.5  # retry_after_max = 3 s


def test_an_endpoint_failing_for_the_whole_window_is_disabled_and_can_be_enabled(
    api: httpx.Client, receiver: Receiver
) -> None:
    receiver.script["/down"] = [(500, {})] * 1000
    app_id, endpoint_id = make_endpoint(api, receiver.url + "/down")

    def disabled() -> dict[str, Any] | None:
        send(api, app_id)  # keep failures coming until the 2 s window has passed
        endpoint: dict[str, Any] = api.get(f"/app/{app_id}/endpoint/{endpoint_id}").json()
        return endpoint if endpoint["disabled"] else None

    endpoint = eventually(disabled, "the endpoint disabled", timeout=30)
    assert endpoint["disabledReason"].startswith("every attempt has failed since")
    # The window runs from the first failure's record to a later failure's record, each a
    # moment after the receiver saw the request: measured at the receiver, allow for that.
    failures = receiver.received("/down")
    assert failures[-1].received_at - failures[0].received_at >= 2.0 - 0.25

    enabled = api.patch(f"/app/{app_id}/endpoint/{endpoint_id}", json={"disabled": False}).json()
    assert (enabled["disabled"], enabled["disabledReason"]) == (False, None)


def test_recover_resends_failed_messages_in_the_background(api: httpx.Client, receiver: Receiver) -> None:
    receiver.script["/recover"] = [(500, {})] * len(SCHEDULE)  # every attempt of the first message fails
    app_id, endpoint_id = make_endpoint(api, receiver.url + "/recover")
    since = datetime.now(UTC) - timedelta(minutes=1)
    msg_id = send(api, app_id)
    eventually(
        lambda: api.get(f"/app/{app_id}/msg/{msg_id}/endpoint").json()["data"][0]["statusText"] == "fail",
        "the delivery failed",
        timeout=30.0,
    )

    response = api.post(f"/app/{app_id}/endpoint/{endpoint_id}/recover", json={"since": since.isoformat()})
    assert response.status_code == 202, response.text
    task = response.json()
    assert (task["task"], task["status"]) == ("endpoint.recover", "running")

    finished = eventually(
        lambda: (t := api.get(f"/background-task/{task['id']}").json())["status"] == "finished" and t,
        "the recover task finished",
        timeout=30.0,
    )
    assert finished["data"]["recovered"] == 1
    receiver.wait_for(lambda requests: len([r for r in requests if r.path == "/recover"]) == len(SCHEDULE) + 1)
    eventually(
        lambda: api.get(f"/app/{app_id}/msg/{msg_id}/endpoint").json()["data"][0]["statusText"] == "success",
        "the delivery recovered",
        timeout=30.0,
    )


def test_throttle_rate_spreads_sends_without_dropping_any(api: httpx.Client, receiver: Receiver) -> None:
    app_id, _ = make_endpoint(api, receiver.url + "/throttled", throttleRate=2)
    sent = {send(api, app_id) for _ in range(10)}

    requests = receiver.wait_for(lambda rs: len([r for r in rs if r.path == "/throttled"]) >= 10, timeout=60)
    throttled = [r for r in requests if r.path == "/throttled"]
    assert {r.headers["webhook-id"] for r in throttled} == sent
    # 10 sends at 2 a second need at least 5 one-second windows: 4 s between first and last.
    assert throttled[-1].received_at - throttled[0].received_at >= 3.5


def test_unknown_background_task_is_404(api: httpx.Client) -> None:
    response = api.get("/background-task/qtask_nope")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
