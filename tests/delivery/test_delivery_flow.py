"""The whole delivery path on real parts: PostgreSQL, a real broker (Redis, RabbitMQ), a
real Celery worker, the API under Uvicorn, and an HTTP receiver on loopback."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from standardwebhooks import Webhook

from hookpost.settings import Settings
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import fresh_postgres_database, upgrade_to_head
from tests.support.processes import api_server, celery_worker
from tests.support.receiver import Receiver
from tests.support.services import RABBITMQ_URL, REDIS_URL, require

EVENT_TYPES = ["user.created", "user.deleted", "invoice.paid", "other.thing"]
# path -> eventTypes filter (None: every event type)
ENDPOINT_FILTERS: dict[str, list[str] | None] = {
    "/all": None,
    "/users-created": ["user.created"],
    "/billing": ["user.deleted", "invoice.paid"],
}


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        url = require("Redis", REDIS_URL)
        redis.Redis.from_url(url).flushdb()  # no leftover tasks from an earlier run
        return url
    return require("RabbitMQ", RABBITMQ_URL)


@pytest.fixture
def production_settings(tmp_path: Path, broker_url: str) -> Iterator[Settings]:
    with fresh_postgres_database() as database_url:
        settings = make_settings(tmp_path, database_url=database_url, broker_url=broker_url)
        upgrade_to_head(settings)
        yield settings


@pytest.fixture
def api(production_settings: Settings) -> Iterator[httpx.Client]:
    with (
        celery_worker(production_settings),
        api_server(production_settings) as base_url,
        httpx.Client(base_url=f"{base_url}/api/v1", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as client,
    ):
        yield client


def _create_endpoint(api: httpx.Client, app_id: str, url: str, event_types: list[str] | None = None) -> dict[str, str]:
    for name in event_types or []:  # an endpoint may filter only on event types in the catalogue
        declared = api.put(f"/event-type/{name}", json={"description": name})
        assert declared.status_code in {200, 201}, declared.text
    response = api.post(f"/app/{app_id}/endpoint", json={"url": url, "eventTypes": event_types})
    assert response.status_code == 201, response.text
    endpoint: dict[str, str] = response.json()
    secret = api.get(f"/app/{app_id}/endpoint/{endpoint['id']}/secret").json()["key"]
    return {**endpoint, "secret": secret}


def test_messages_reach_exactly_the_endpoints_that_want_them_signed(api: httpx.Client, receiver: Receiver) -> None:
    app_id = api.post("/app", json={"name": "Acme"}).json()["id"]
    secrets = {
        path: _create_endpoint(api, app_id, receiver.url + path, event_types)["secret"]
        for path, event_types in ENDPOINT_FILTERS.items()
    }

    sent: dict[str, str] = {}  # msg id -> event type
    for number, event_type in zip(range(100), itertools.cycle(EVENT_TYPES), strict=False):
        response = api.post(f"/app/{app_id}/msg", json={"eventType": event_type, "payload": {"n": number}})
        assert response.status_code == 202, response.text
        sent[response.json()["id"]] = event_type

    expected = {
        path: {msg_id for msg_id, event_type in sent.items() if event_types is None or event_type in event_types}
        for path, event_types in ENDPOINT_FILTERS.items()
    }
    total = sum(len(ids) for ids in expected.values())
    receiver.wait_for(lambda requests: len(requests) >= total, timeout=90)

    for path, wanted in expected.items():
        requests = receiver.received(path)
        assert {request.headers["webhook-id"] for request in requests} == wanted
        assert len(requests) == len(wanted), f"{path} got a message twice"
        for request in requests:
            Webhook(secrets[path]).verify(request.body, request.headers)
            assert request.headers["svix-signature"] == request.headers["webhook-signature"]

    # The API agrees: each message is owed to, and delivered to, exactly those endpoints.
    endpoint_paths = {
        ep["id"]: ep["url"].removeprefix(receiver.url) for ep in api.get(f"/app/{app_id}/endpoint").json()["data"]
    }
    for msg_id in list(sent)[:8]:
        destinations = api.get(f"/app/{app_id}/msg/{msg_id}/endpoint").json()["data"]
        assert {endpoint_paths[d["id"]] for d in destinations} == {p for p, ids in expected.items() if msg_id in ids}
        assert all(d["statusText"] == "success" for d in destinations)


def test_failed_deliveries_retry_on_the_schedule(
    api: httpx.Client, production_settings: Settings, receiver: Receiver
) -> None:
    receiver.fail_first = 2
    app_id = api.post("/app", json={"name": "Flaky"}).json()["id"]
    _create_endpoint(api, app_id, receiver.url + "/flaky")

    msg_id = api.post(f"/app/{app_id}/msg", json={"eventType": "x", "payload": {}}).json()["id"]
    requests = receiver.wait_for(lambda requests: len(requests) >= 3, timeout=60)

    assert [request.headers["webhook-id"] for request in requests] == [msg_id] * 3
    gaps = [later.received_at - earlier.received_at for earlier, later in itertools.pairwise(requests)]
    # Schedule [0, 1, 2] s without jitter; the scheduler looks every 0.2 s.
    for gap, planned in zip(gaps, production_settings.retry_schedule[1:], strict=True):
        assert planned <= gap < planned + 1.5, f"gaps {gaps}"

    attempts = _wait_for_attempts(api, app_id, msg_id, 3)
    assert [(a["statusText"], a["responseStatusCode"]) for a in reversed(attempts)] == [
        ("fail", 500),
        ("fail", 500),
        ("success", 200),
    ]


def test_a_repeated_idempotency_key_delivers_once(api: httpx.Client, receiver: Receiver) -> None:
    app_id = api.post("/app", json={"name": "Once"}).json()["id"]
    _create_endpoint(api, app_id, receiver.url + "/once")
    body = {"eventType": "order.placed", "payload": {"order": 7}}
    first = api.post(f"/app/{app_id}/msg", json=body, headers={"idempotency-key": "order-7"})
    repeat = api.post(f"/app/{app_id}/msg", json=body, headers={"idempotency-key": "order-7"})
    assert first.status_code == repeat.status_code == 202
    assert first.json()["id"] == repeat.json()["id"]

    receiver.wait_for(lambda requests: len(requests) >= 1)
    # A marker message sent after the repeat arrives only after anything the repeat queued.
    marker = api.post(f"/app/{app_id}/msg", json={"eventType": "marker", "payload": {}}).json()["id"]
    receiver.wait_for(lambda requests: any(r.headers["webhook-id"] == marker for r in requests))
    assert [r.headers["webhook-id"] for r in receiver.received()].count(first.json()["id"]) == 1
    assert len(api.get(f"/app/{app_id}/msg").json()["data"]) == 2


def _wait_for_attempts(api: httpx.Client, app_id: str, msg_id: str, count: int) -> list[dict[str, object]]:
    """Attempt rows commit just after the receiver answers: poll for them with a deadline."""
    deadline = time.monotonic() + 15
    while True:
        attempts: list[dict[str, object]] = api.get(f"/app/{app_id}/attempt/msg/{msg_id}").json()["data"]
        if len(attempts) >= count or time.monotonic() > deadline:
            return attempts
        time.sleep(0.1)
