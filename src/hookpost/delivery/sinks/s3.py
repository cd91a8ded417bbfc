"""amazonS3: each batch stored as one object, a JSON array of its messages in order.

The object's key is ``{appId}/{firstMsgId}.{lastMsgId}.json``: keys sort as the batches were
accepted, and a repeated batch writes the same key again, never a second object.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.sender import AttemptResult
from hookpost.delivery.sinks.aws import aws_client, describe_aws_failure
from hookpost.delivery.sinks.batch import OutgoingBatch, Stopwatch, delivered, failed, message_json


def object_key(batch: OutgoingBatch) -> str:
    return f"{batch.app_id}/{batch.first_id}.{batch.last_id}.json"


class S3Sink:
    def target(self, config: dict[str, Any]) -> str:
        return f"s3://{config['bucket']}"

    async def send(self, context: DeliveryContext, batch: OutgoingBatch) -> AttemptResult:
        watch = Stopwatch()
        key = object_key(batch)
        body = json.dumps([message_json(message) for message in batch.messages]).encode()
        try:
            async with asyncio.timeout(context.settings.delivery_timeout):
                async with aws_client("s3", batch.config, context.settings, batch.config.get("endpoint_url")) as client:
                    await client.put_object(
                        Bucket=str(batch.config["bucket"]),
                        Key=key,
                        Body=body,
                        ContentType="application/json",
                        Metadata={"message-count": str(len(batch.messages))},
                    )
        except Exception as exc:
            return failed(watch, describe_aws_failure(exc))
        return delivered(watch, f"stored as s3://{batch.config['bucket']}/{key}")
