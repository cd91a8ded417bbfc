"""sqs: each message sent, in order, as one SQS message (SendMessageBatch, ten at a time).

The body is the message as the API shows it; ``msgId`` and ``eventType`` go as message
attributes too. On a FIFO queue (its URL ends in ``.fifo``) the messages share one message
group, the destination's, so SQS keeps their order, and the message id is the deduplication
id, so a repeated batch within SQS's five minutes is not delivered twice.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.sender import AttemptResult
from hookpost.delivery.sinks.aws import aws_client, describe_aws_failure
from hookpost.delivery.sinks.batch import OutgoingBatch, Stopwatch, delivered, failed, message_json
from hookpost.storage.models import Message

SQS_BATCH = 10  # SendMessageBatch's limit


def _entry(index: int, message: Message, fifo_group: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "Id": str(index),
        "MessageBody": json.dumps(message_json(message)),
        "MessageAttributes": {
            "msgId": {"DataType": "String", "StringValue": message.id},
            "eventType": {"DataType": "String", "StringValue": message.event_type},
        },
    }
    if fifo_group is not None:
        entry["MessageGroupId"] = fifo_group
        entry["MessageDeduplicationId"] = message.id
    return entry


def _endpoint(config: dict[str, Any]) -> str:
    """Where the requests go: the configured endpoint, else the queue URL's own server."""
    if config.get("endpoint_url"):
        return str(config["endpoint_url"])
    parts = urlsplit(str(config["queue_url"]))
    return f"{parts.scheme}://{parts.netloc}"


class SqsSink:
    def target(self, config: dict[str, Any]) -> str:
        return str(config["queue_url"])

    async def send(self, context: DeliveryContext, batch: OutgoingBatch) -> AttemptResult:
        watch = Stopwatch()
        queue_url = str(batch.config["queue_url"])
        fifo_group = batch.destination_id if queue_url.endswith(".fifo") else None
        try:
            async with asyncio.timeout(context.settings.delivery_timeout):
                async with aws_client("sqs", batch.config, context.settings, _endpoint(batch.config)) as client:
                    for start in range(0, len(batch.messages), SQS_BATCH):
                        chunk = batch.messages[start : start + SQS_BATCH]
                        answer = await client.send_message_batch(
                            QueueUrl=queue_url,
                            Entries=[_entry(start + n, message, fifo_group) for n, message in enumerate(chunk)],
                        )
                        if refused := answer.get("Failed"):
                            # Nothing after a refused message is sent: the batch is repeated whole.
                            first = min(refused, key=lambda item: int(item["Id"]))
                            message = batch.messages[int(first["Id"])]
                            return failed(
                                watch, f"SQS refused {message.id}: {first.get('Code')}: {first.get('Message', '')}"
                            )
        except Exception as exc:
            return failed(watch, describe_aws_failure(exc))
        return delivered(watch, f"{len(batch.messages)} messages sent")
