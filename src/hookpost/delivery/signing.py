"""Standard Webhooks headers, with Svix's header names alongside for Svix receivers."""

from __future__ import annotations

from datetime import datetime

from standardwebhooks import Webhook


def webhook_headers(msg_id: str, timestamp: datetime, body: str, secrets: list[str]) -> dict[str, str]:
    """Sign with every active secret: after a rotation the receiver may still hold the old one."""
    signature = " ".join(Webhook(secret).sign(msg_id, timestamp, body) for secret in secrets)
    unix = str(int(timestamp.timestamp()))
    headers = {"content-type": "application/json"}
    for prefix in ("webhook", "svix"):
        headers[f"{prefix}-id"] = msg_id
        headers[f"{prefix}-timestamp"] = unix
        headers[f"{prefix}-signature"] = signature
    return headers
