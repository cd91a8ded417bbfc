"""sqs destinations delivered to moto's SQS on loopback: each accepted message an SQS message,
in order, its body the message (id, event type, payload) and its id and event type as
attributes; on a FIFO queue one message group with the message id as deduplication id; a
missing queue fails the batch with a clear reason, and it is retried until the queue exists."""

from __future__ import annotations

import json
import secrets
from typing import Any

from fastapi.testclient import TestClient

from hookpost.delivery.context import DeliveryContext
from tests.api.helpers import expect
from tests.destinations.delivered import attempts, create, delivered_count, run_until, send
from tests.destinations.moto_server import KEYS, REGION, aws, moto_url
from tests.destinations.test_fifo import context, settings

__all__ = ["context", "moto_url", "settings"]


def received(moto_url: str, queue_url: str) -> list[dict[str, Any]]:
    sqs = aws("sqs", moto_url)
    taken: list[dict[str, Any]] = []
    while True:
        answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        if not answer.get("Messages"):
            return taken
        taken += answer["Messages"]
        for message in answer["Messages"]:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def config(queue_url: str) -> dict[str, Any]:
    return {"queueUrl": queue_url, "region": REGION, **KEYS}


async def test_messages_arrive_in_order_on_a_fifo_queue(
    client: TestClient, app_id: str, context: DeliveryContext, moto_url: str
) -> None:
    name = f"queues_{secrets.token_hex(6)}.fifo"
    queue_url = aws("sqs", moto_url).create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]
    other_app = expect(client.post("/api/v1/app", json={"name": "other"}), 201)["id"]
    destination = create(client, app_id, "sqs", config(queue_url), batchSize=25)
    send(client, other_app, 2)
    sent = send(client, app_id, 23)  # more than one SendMessageBatch (ten at most)

    await run_until(context, lambda: delivered_count(client, app_id, destination["id"]) >= 23)

    messages = received(moto_url, queue_url)
    bodies = [json.loads(m["Body"]) for m in messages]
    assert [b["id"] for b in bodies] == sent
    assert [b["payload"] for b in bodies] == [{"n": n} for n in range(23)]
    assert {b["eventType"] for b in bodies} == {"order.paid"}
    assert [m["MessageAttributes"]["msgId"]["StringValue"] for m in messages] == sent
    assert {m["MessageAttributes"]["eventType"]["StringValue"] for m in messages} == {"order.paid"}
    made = attempts(client, app_id, destination["id"])
    assert [(a["status"], a["messageCount"], a["url"]) for a in made] == [(0, 23, queue_url)]
    assert KEYS["secretAccessKey"] not in json.dumps(made)


async def test_a_missing_queue_fails_and_the_batch_is_retried_once_it_exists(
    client: TestClient, app_id: str, context: DeliveryContext, moto_url: str
) -> None:
    name = f"queues_{secrets.token_hex(6)}"
    queue_url = f"{moto_url}/123456789012/{name}"
    destination = create(client, app_id, "sqs", config(queue_url))
    path = f"/api/v1/app/{app_id}/destination/{destination['id']}"
    sent = send(client, app_id, 2)

    await run_until(context, lambda: len(attempts(client, app_id, destination["id"])) >= 1)
    failure = attempts(client, app_id, destination["id"])[0]
    assert failure["status"] == 2
    assert failure["error"].startswith("AWS refused: AWS.SimpleQueueService.NonExistentQueue")

    assert aws("sqs", moto_url).create_queue(QueueName=name)["QueueUrl"] == queue_url
    if expect(client.get(path), 200)["status"] == "disabled":  # the short test schedule may be spent already
        expect(client.patch(path, json={"type": "sqs", "status": "enabled"}), 200)
    await run_until(context, lambda: delivered_count(client, app_id, destination["id"]) >= 2)

    assert [json.loads(m["Body"])["id"] for m in received(moto_url, queue_url)] == sent
