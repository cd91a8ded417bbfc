"""The README's "Five minutes with curl" flow, over any HTTP client pointed at a running API.

An application, the event type, an endpoint on the test's receiver, its secret, one message; then the
webhook the receiver got is checked against that secret, and the attempt list must show
the delivery as a success. Used to prove the app end to end through other servers and
through a proxy.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
import standardwebhooks

from tests.support.receiver import Receiver

DELIVERY_DEADLINE = 120.0  # generous: a loaded two-core machine; the wait ends at the delivery


@dataclass(frozen=True)
class TutorialRun:
    app_id: str
    endpoint_id: str
    message_id: str
    attempt: dict[str, Any]


def run_tutorial(api: httpx.Client, receiver: Receiver, *, path: str = "/webhooks") -> TutorialRun:
    """Run the tutorial with ``api`` (base URL and bearer token already set)."""
    uid = f"acme-{secrets.token_hex(4)}"
    app = api.post("/api/v1/app", json={"name": "Acme Inc", "uid": uid})
    assert app.status_code == 201, app.text
    # An endpoint may filter only on event types in the catalogue; a repeat run finds it there.
    event_type = api.put(
        "/api/v1/event-type/invoice.paid",
        json={
            "description": "An invoice was paid",
            "schemas": {
                "1": {
                    "type": "object",
                    "required": ["invoice"],
                    "properties": {"invoice": {"type": "integer"}},
                    "examples": [{"invoice": 42, "amount": 1999}],
                }
            },
        },
    )
    assert event_type.status_code in {200, 201}, event_type.text
    endpoint = api.post(
        f"/api/v1/app/{uid}/endpoint",
        json={"url": f"{receiver.url}{path}", "eventTypes": ["invoice.paid"], "uid": "main"},
    )
    assert endpoint.status_code == 201, endpoint.text
    secret = api.get(f"/api/v1/app/{uid}/endpoint/main/secret")
    assert secret.status_code == 200, secret.text
    payload = {"invoice": 42, "amount": 1999}
    message = api.post(
        f"/api/v1/app/{uid}/msg",
        json={"eventType": "invoice.paid", "payload": payload},
        headers={"idempotency-key": f"invoice-42-{uid}"},
    )
    assert message.status_code == 202, message.text
    message_id = message.json()["id"]

    delivered = receiver.wait_for(lambda requests: any(r.path == path for r in requests), timeout=DELIVERY_DEADLINE)
    webhook = next(r for r in delivered if r.path == path)
    assert webhook.headers["webhook-id"] == message_id
    assert standardwebhooks.Webhook(secret.json()["key"]).verify(webhook.body, webhook.headers) == payload

    # The worker records the attempt just after the receiver answered: poll until it is there.
    deadline = time.monotonic() + DELIVERY_DEADLINE
    while True:
        attempts = api.get(f"/api/v1/app/{uid}/attempt/msg/{message_id}")
        assert attempts.status_code == 200, attempts.text
        if attempts.json()["data"]:
            break
        assert time.monotonic() < deadline, f"no attempt listed within {DELIVERY_DEADLINE}s"
        time.sleep(0.1)  # polling interval, bounded by the deadline
    attempt: dict[str, Any] = attempts.json()["data"][0]
    assert attempt["statusText"] == "success", attempt
    assert attempt["responseStatusCode"] == 200, attempt
    return TutorialRun(app.json()["id"], endpoint.json()["id"], message_id, attempt)
