"""fifoEndpoint: the batch POSTed as one JSON array, signed like a webhook (Standard Webhooks)."""

from __future__ import annotations

import json
from typing import Any

from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.sender import AttemptResult, post_webhook
from hookpost.delivery.signing import webhook_headers
from hookpost.delivery.sinks.batch import OutgoingBatch, message_json
from hookpost.endpoints.credentials import outgoing_headers, split_credentials
from hookpost.kit.urls import redact_url


def batch_webhook_id(first_msg_id: str, last_msg_id: str) -> str:
    """The ``webhook-id`` of a batch: the same on every retry of that batch, so a receiver can
    tell a repeat from a new batch."""
    return f"{first_msg_id}.{last_msg_id}"


def batch_body(batch: OutgoingBatch) -> str:
    """A JSON array of the messages, each as ``GET .../msg/{id}`` shows it (payload included)."""
    return json.dumps([message_json(message) for message in batch.messages])


class HttpBatchSink:
    def target(self, config: dict[str, Any]) -> str:
        return redact_url(str(config["url"]))

    async def send(self, context: DeliveryContext, batch: OutgoingBatch) -> AttemptResult:
        settings = context.settings
        url = str(batch.config["url"])
        body = batch_body(batch)
        headers = {
            # Credentials in the URL go as Basic auth, as an endpoint's (the request's URL drops them).
            **outgoing_headers(batch.config.get("headers") or {}, split_credentials(url)[1]),
            **webhook_headers(batch_webhook_id(batch.first_id, batch.last_id), batch.signed_at, body, batch.secrets),
        }
        return await post_webhook(
            context.http, url, body, headers, settings.response_body_limit, settings.delivery_timeout
        )
