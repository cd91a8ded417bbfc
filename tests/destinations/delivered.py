"""What the tests of the queue and store destinations share: make one through the API, send
messages, run the in-process runner until the destination's attempts say what is wanted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from fastapi.testclient import TestClient

from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.fifo import FifoRunner
from tests.api.helpers import Json, expect
from tests.support.eventually import eventually_async


def create(client: TestClient, app_id: str, type_: str, config: Json, **fields: Any) -> Json:
    body = {"type": type_, "config": config, "batchSize": 3, "maxWaitSecs": 0, **fields}
    return expect(client.post(f"/api/v1/app/{app_id}/destination", json=body), 201)


def send(client: TestClient, app_id: str, count: int, event_type: str = "order.paid") -> list[str]:
    return [
        expect(client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": event_type, "payload": {"n": n}}), 202)["id"]
        for n in range(count)
    ]


def attempts(client: TestClient, app_id: str, destination_id: str) -> list[Json]:
    """The destination's attempts, oldest first."""
    page = expect(client.get(f"/api/v1/app/{app_id}/destination/{destination_id}/attempt", params={"limit": 250}), 200)
    return list(reversed(page["data"]))


def delivered_count(client: TestClient, app_id: str, destination_id: str) -> int:
    return sum(a["messageCount"] for a in attempts(client, app_id, destination_id) if a["status"] == 0)


async def run_until(
    context: DeliveryContext,
    done: Callable[[], bool | Awaitable[bool]],
    timeout: float = 30.0,  # noqa: ASYNC109 - a deadline, then a clear failure
) -> None:
    """Tick a runner (as the scheduler's nudges would) until ``done``; then let its batches finish."""
    runner = FifoRunner(context)

    async def done_or_ticked() -> bool:
        answer = done()
        if answer if isinstance(answer, bool) else await answer:
            return True
        await runner.tick()
        await runner.wait_idle()
        return False

    await eventually_async(done_or_ticked, "done", timeout=timeout, interval=0.02)
    await runner.wait_idle()


def without_loopback(context: DeliveryContext) -> DeliveryContext:
    """A worker's context that does not allow loopback (the API's did, when the destination was made)."""
    return replace(context, settings=context.settings.model_copy(update={"allowed_networks": []}))
