"""The stream against a real server (``hookpost api`` and a Celery worker, embedded default):
attempt and endpoint events from the worker, and the close codes of refused clients as a
real WebSocket client sees them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.api.helpers import unique
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.stream.support import Json, Stack, api_client, hookpost_stack, make_app, open_stream, subscribe
from tests.support.receiver import Receiver

EVENT_DEADLINE = 45.0  # a loaded machine; the events come within a second or two otherwise


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Stack]:
    settings = make_settings(tmp_path_factory.mktemp("stream-server"))
    with hookpost_stack(settings, api_workers=1, concurrency=1) as running:
        yield running


async def events_until(stack: Stack, app_id: str, trigger_path: str, receiver: Receiver, count: int) -> list[Json]:
    """Subscribe, send one message to the app, and return the first ``count`` events."""
    client = await subscribe(stack, app_id)
    try:
        async with api_client(stack) as api:
            response = await api.post(f"/app/{app_id}/msg", json={"eventType": "stream.test", "payload": {}})
            assert response.status_code == 202, response.text
        await client.wait_for(
            lambda c: len(c.events) >= count, deadline=time.monotonic() + EVENT_DEADLINE, what=trigger_path
        )
        return client.events[:count]
    finally:
        await client.close()


def test_a_410_gives_a_failed_attempt_and_endpoint_disabled(stack: Stack, receiver: Receiver) -> None:
    receiver.script["/gone"] = [(410, {})]

    async def scenario() -> tuple[str, list[Json]]:
        async with api_client(stack) as api:
            app_id = await make_app(api, unique("gone"), f"{receiver.url}/gone")
        return app_id, await events_until(stack, app_id, "/gone", receiver, count=3)

    app_id, events = asyncio.run(scenario())
    created, failed, disabled = by_type(events, "message.created", "attempt.failed", "endpoint.disabled")
    assert failed["statusCode"] == 410
    assert failed["msgId"] == created["msgId"]
    assert disabled["appId"] == app_id
    assert disabled["endpointId"] == failed["endpointId"]
    assert disabled["attemptId"] == failed["attemptId"]
    assert "410" in disabled["reason"]
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    endpoint = httpx.get(f"{stack.base_url}/api/v1/app/{app_id}/endpoint/{disabled['endpointId']}", headers=headers)
    assert endpoint.json()["disabled"] is True
    # The attempt in the event is the one on record.
    attempts = httpx.get(f"{stack.base_url}/api/v1/app/{app_id}/attempt/msg/{created['msgId']}", headers=headers)
    assert [attempt["id"] for attempt in attempts.json()["data"]] == [failed["attemptId"]]


def test_a_failure_then_a_retry_that_succeeds(stack: Stack, receiver: Receiver) -> None:
    receiver.script["/flaky"] = [(500, {})]  # then 200; the retry comes after 1 s (make_settings)

    async def scenario() -> list[Json]:
        async with api_client(stack) as api:
            app_id = await make_app(api, unique("flaky"), f"{receiver.url}/flaky")
        return await events_until(stack, app_id, "/flaky", receiver, count=3)

    events = asyncio.run(scenario())
    created, failed, succeeded = by_type(events, "message.created", "attempt.failed", "attempt.succeeded")
    assert (failed["statusCode"], succeeded["statusCode"]) == (500, 200)
    assert failed["attemptId"] != succeeded["attemptId"]
    assert failed["msgId"] == succeeded["msgId"] == created["msgId"]


def by_type(events: list[Json], *types: str) -> list[Json]:
    """One event of each type, in that order; the events must be exactly these."""
    assert sorted(event["type"] for event in events) == sorted(types), events
    return [next(event for event in events if event["type"] == type_) for type_ in types]


async def close_of(stack: Stack, app_ref: str, **options: object) -> tuple[int, str]:
    connection = await open_stream(stack, app_ref, **options)  # type: ignore[arg-type]
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(connection.recv(), 30)
    frame = closed.value.rcvd
    assert frame is not None, "no close frame"
    return frame.code, frame.reason


def test_refusals_close_with_documented_codes_and_a_reason(stack: Stack, receiver: Receiver) -> None:
    async def scenario() -> None:
        async with api_client(stack) as api:
            app_id = await make_app(api, unique("auth"), f"{receiver.url}/auth")
        assert await close_of(stack, app_id, token=None) == (
            4401,
            "Missing bearer token (Authorization header or token query parameter)",
        )
        assert await close_of(stack, app_id, token="wrong-" + ADMIN_TOKEN) == (4401, "Invalid token")
        assert await close_of(stack, app_id, token="wrong-" + ADMIN_TOKEN, via_query=True) == (4401, "Invalid token")
        basic = {"authorization": "Basic YWRtaW46YWRtaW4="}
        assert await close_of(stack, app_id, token=None, headers=basic) == (
            4401,
            "Authorization must be a Bearer token",
        )
        # The token is checked first: no telling whether an application exists without it.
        assert (await close_of(stack, "app_unknown", token=None))[0] == 4401
        assert await close_of(stack, "app_unknown") == (4404, "Application not found")
        assert await close_of(stack, "no-such-uid") == (4404, "Application not found")

        # Accepted: the token as a query parameter (browsers), and the app by uid.
        uid = unique("by-uid")
        async with api_client(stack) as api:
            by_uid = await make_app(api, uid, f"{receiver.url}/auth")
        for app_ref, via_query in ((app_id, True), (uid, False)):
            connection = await open_stream(stack, app_ref, via_query=via_query)
            hello = json.loads(await asyncio.wait_for(connection.recv(), 30))
            assert hello["type"] == "stream.hello"
            assert hello["appId"] == (app_id if app_ref == app_id else by_uid)
            await connection.close()

    asyncio.run(scenario())


def test_plain_http_to_the_stream_is_an_error_in_the_api_shape(stack: Stack) -> None:
    response = httpx.get(f"{stack.base_url}/api/v1/app/app_x/stream", headers={"authorization": "Bearer x"})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_message_created_once_per_message_and_not_for_a_repeat(stack: Stack, receiver: Receiver) -> None:
    async def scenario() -> None:
        async with api_client(stack) as api:
            app_id = await make_app(api, unique("repeat"), f"{receiver.url}/repeat")
            client = await subscribe(stack, app_id)
            ids = []
            for key in ("key-1", "key-1", "key-2"):  # the second is a repeat of the first
                response = await api.post(
                    f"/app/{app_id}/msg",
                    json={"eventType": "stream.test", "payload": {}},
                    headers={"idempotency-key": key},
                )
                assert response.status_code == 202, response.text
                ids.append(response.json()["id"])
        assert ids[0] == ids[1] != ids[2]
        # Once both attempts are in, every message.created has had time to arrive before them.
        await client.wait_for(
            lambda c: c.kinds["attempt.succeeded"] >= 2, deadline=time.monotonic() + EVENT_DEADLINE, what="attempts"
        )
        created = [event["msgId"] for event in client.events if event["type"] == "message.created"]
        assert created == [ids[0], ids[2]]
        await client.close()

    asyncio.run(scenario())
