"""Recording attempts, on both databases: the lease, not the attempt, decides who sets a
delivery's state, so an attempt whose lease ended while it was sent sets nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from hookpost.delivery.claim import claim
from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.record import record
from hookpost.delivery.sender import AttemptResult
from hookpost.kit.time import as_utc, utcnow
from hookpost.settings import Settings
from hookpost.storage.models import Attempt, Delivery, Endpoint, EndpointRollup, MessageStatus
from tests.support.delivery import delivery_context

ANSWERED = AttemptResult(200, "ok", 5, None)


@pytest.fixture
def settings(settings_per_database: Settings) -> Settings:
    return settings_per_database


@pytest.fixture
async def context(settings: Settings) -> AsyncIterator[DeliveryContext]:
    async with delivery_context(settings) as context:
        yield context


async def _two_deliveries(client: TestClient, context: DeliveryContext) -> tuple[str, list[str]]:
    """An endpoint that nothing reaches, and the deliveries of two messages to it, oldest first."""
    app_id = client.post("/api/v1/app", json={"name": "record"}).json()["id"]
    created = client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": "http://127.0.0.1:9/never"})
    for _ in range(2):
        assert client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "e", "payload": {}}).status_code == 202
    async with context.sessionmaker() as session:
        return created.json()["id"], list(await session.scalars(select(Delivery.id).order_by(Delivery.id)))


async def test_an_attempt_whose_lease_ended_is_on_record_but_sets_no_state(
    client: TestClient, context: DeliveryContext
) -> None:
    endpoint_id, delivery_ids = await _two_deliveries(client, context)
    claimed, _ = await claim(context, delivery_ids, len(delivery_ids))
    lost, kept = sorted(claimed, key=lambda c: c.delivery_id)
    # While both were sent, the first one's lease ran out and another worker took it over.
    other_lease = utcnow() + timedelta(seconds=60)
    async with context.sessionmaker() as session:
        await session.execute(
            update(Delivery).where(Delivery.id == lost.delivery_id).values(lease_until=other_lease, attempt_count=3)
        )
        await session.commit()

    await record(context, [(lost, ANSWERED), (kept, ANSWERED)], [])
    # The same batch again (as after the database answered too late): nothing is settled twice.
    await record(context, [(kept, ANSWERED)], [])

    async with context.sessionmaker() as session:
        deliveries = {d.id: d for d in await session.scalars(select(Delivery))}
        attempted = set(await session.scalars(select(Attempt.delivery_id)))
        settled = await session.scalar(
            select(func.sum(EndpointRollup.success)).where(EndpointRollup.endpoint_id == endpoint_id)
        )
    taken_over = deliveries[lost.delivery_id]
    assert (taken_over.status, taken_over.attempt_count) == (MessageStatus.PENDING, 3)
    assert taken_over.lease_until is not None
    assert as_utc(taken_over.lease_until) == other_lease
    done = deliveries[kept.delivery_id]
    assert (done.status, done.attempt_count, done.lease_until) == (MessageStatus.SUCCESS, 1, None)
    assert attempted == {lost.delivery_id, kept.delivery_id}
    assert settled == 1


async def test_a_success_ends_its_endpoints_run_of_failures(client: TestClient, context: DeliveryContext) -> None:
    endpoint_id, (first, second) = await _two_deliveries(client, context)

    async def failing_since() -> datetime | None:
        async with context.sessionmaker() as session:
            return await session.scalar(select(Endpoint.failing_since).where(Endpoint.id == endpoint_id))

    claimed, _ = await claim(context, [first], 1)
    await record(context, [(claimed[0], AttemptResult(500, "no", 5, None))], [])
    assert await failing_since() is not None
    # A batch of successes alone: its endpoints are not read, their runs of failures still end.
    claimed, _ = await claim(context, [second], 1)
    await record(context, [(claimed[0], ANSWERED)], [])
    assert await failing_since() is None
