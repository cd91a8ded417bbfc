"""rabbitMq destinations delivered to the local RabbitMQ: each accepted message published in
order to the routing key's queue, with its id, event type and payload; a queue that is missing
(mandatory) or a wrong password fails the batch with a clear reason, and it is retried."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiormq
import pytest
from fastapi.testclient import TestClient
from pamqp import commands
from yarl import URL

from hookpost.delivery.context import DeliveryContext
from tests.api.helpers import expect
from tests.destinations.delivered import attempts, create, delivered_count, run_until, send, without_loopback
from tests.destinations.test_fifo import context, settings
from tests.support.services import RABBITMQ_URL, require

pytestmark = pytest.mark.rabbitmq

__all__ = ["context", "settings"]


def broker_uri(password: str = "guest") -> str:
    return str(URL(require("RabbitMQ", RABBITMQ_URL)).with_password(password).with_path("/%2F", encoded=True))


@pytest.fixture
async def broker() -> AsyncIterator[aiormq.abc.AbstractChannel]:
    connection = await aiormq.connect(broker_uri())
    try:
        yield await connection.channel()
    finally:
        await connection.close()


@pytest.fixture
async def queue(broker: aiormq.abc.AbstractChannel) -> AsyncIterator[str]:
    name = f"queues_{secrets.token_hex(6)}"
    await broker.queue_declare(name, durable=False)
    yield name
    await broker.queue_delete(name)


async def take_all(broker: aiormq.abc.AbstractChannel, queue: str) -> list[Any]:
    taken = []
    while not isinstance((got := await broker.basic_get(queue, no_ack=True)).delivery, commands.Basic.GetEmpty):
        taken.append(got)
    return taken


def config(queue: str, **fields: Any) -> dict[str, Any]:
    return {"uri": broker_uri(), "routingKey": queue, "mandatory": True, **fields}


async def test_messages_are_published_in_order_with_their_id_type_and_payload(
    client: TestClient, app_id: str, context: DeliveryContext, broker: aiormq.abc.AbstractChannel, queue: str
) -> None:
    other_app = expect(client.post("/api/v1/app", json={"name": "other"}), 201)["id"]
    destination = create(client, app_id, "rabbitMq", config(queue))
    send(client, other_app, 2)
    sent = send(client, app_id, 7)

    await run_until(context, lambda: delivered_count(client, app_id, destination["id"]) >= 7)

    published = await take_all(broker, queue)
    assert [m.header.properties.message_id for m in published] == sent
    bodies = [json.loads(m.body) for m in published]
    assert [b["id"] for b in bodies] == sent
    assert [b["payload"] for b in bodies] == [{"n": n} for n in range(7)]
    assert {b["eventType"] for b in bodies} == {"order.paid"}
    assert {m.header.properties.message_type for m in published} == {"order.paid"}
    assert {m.header.properties.delivery_mode for m in published} == {2}
    made = attempts(client, app_id, destination["id"])
    assert [(a["firstMsgId"], a["messageCount"], a["status"]) for a in made] == [
        (sent[0], 3, 0),
        (sent[3], 3, 0),
        (sent[6], 1, 0),
    ]
    assert "guest:guest" not in json.dumps(made)


async def test_a_missing_queue_fails_the_batch_and_it_is_retried_until_the_queue_exists(
    client: TestClient, app_id: str, context: DeliveryContext, broker: aiormq.abc.AbstractChannel
) -> None:
    name = f"queues_{secrets.token_hex(6)}"
    destination = create(client, app_id, "rabbitMq", config(name))
    sent = send(client, app_id, 2)

    await run_until(context, lambda: len(attempts(client, app_id, destination["id"])) >= 1)
    failure = attempts(client, app_id, destination["id"])[0]
    assert failure["status"] == 2
    assert "no queue is bound to the routing key" in failure["error"]
    shown = expect(client.get(f"/api/v1/app/{app_id}/destination/{destination['id']}"), 200)
    assert shown["status"] in ("retrying", "disabled")

    await broker.queue_declare(name, durable=False)
    try:
        if shown["status"] == "disabled":  # the short test schedule may be spent already
            patch = {"type": "rabbitMq", "status": "enabled"}
            expect(client.patch(f"/api/v1/app/{app_id}/destination/{destination['id']}", json=patch), 200)
        await run_until(context, lambda: delivered_count(client, app_id, destination["id"]) >= 2)
        # At least once: a message the broker took before the batch failed may come again, never out of order.
        ids = [m.header.properties.message_id for m in await take_all(broker, name)]
        assert ids[-2:] == sent
    finally:
        await broker.queue_delete(name)


async def test_a_wrong_password_fails_every_attempt_and_spent_retries_disable_it(
    client: TestClient, app_id: str, context: DeliveryContext, queue: str
) -> None:
    destination = create(client, app_id, "rabbitMq", config(queue, uri=broker_uri("not-the-password")))
    send(client, app_id, 1)

    await run_until(
        context,
        lambda: (
            expect(client.get(f"/api/v1/app/{app_id}/destination/{destination['id']}"), 200)["status"] == "disabled"
        ),
    )

    made = attempts(client, app_id, destination["id"])
    assert len(made) == 4  # the test schedule: four attempts
    assert {a["status"] for a in made} == {2}
    assert "authentication failed" in made[0]["error"]
    assert "not-the-password" not in json.dumps(made)


async def test_the_address_check_applies_to_the_broker(
    client: TestClient, app_id: str, context: DeliveryContext, broker: aiormq.abc.AbstractChannel, queue: str
) -> None:
    destination = create(client, app_id, "rabbitMq", config(queue, uri=broker_uri().replace("127.0.0.1", "localhost")))
    send(client, app_id, 1)

    await run_until(without_loopback(context), lambda: len(attempts(client, app_id, destination["id"])) >= 1)

    error = attempts(client, app_id, destination["id"])[0]["error"]
    assert error.startswith("destination refused: localhost resolves to 127.0.0.1"), error
    assert await take_all(broker, queue) == []
