"""Sending one claimed delivery: its receiver's slot, its endpoint's rate, the POST itself."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from hookpost.delivery.claim import Claimed
from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.sender import AttemptResult, post_webhook
from hookpost.kit.time import utcnow
from hookpost.kit.urls import redact_url
from hookpost.observability.request_id import request_id_var

logger = logging.getLogger(__name__)


async def send_one(
    context: DeliveryContext,
    claimed: Claimed,
    request_id: str | None,
    stopping: Callable[[], bool] | None = None,
) -> AttemptResult | None:
    """POST one claimed delivery; None when it must wait (its endpoint's rate says not yet,
    it waited for a slot to its receiver until too little of its lease was left, or the
    worker began to stop before it could start).

    Never raises: whatever goes wrong is this delivery's failed attempt, with the reason,
    and the deliveries sent alongside it are not affected. Runs as its own asyncio task, so
    the request id set here stays with this delivery.
    """
    request_id_var.set(request_id)
    if claimed.unsendable is not None:
        return AttemptResult(0, "", 0, claimed.unsendable)
    try:
        if claimed.throttle_rate is not None and not await context.limiter.try_acquire(
            claimed.endpoint_id, claimed.throttle_rate
        ):
            return None
        settings = context.settings
        async with context.destination_slot(claimed.url):
            if stopping is not None and stopping():
                return None  # not started: back to the schedule for the next worker
            if utcnow() + timedelta(seconds=settings.delivery_timeout) >= claimed.lease:
                return None  # waited so long for a slot that our lease could end mid-send
            result = await post_webhook(
                context.http,
                claimed.url,
                claimed.body,
                claimed.headers,
                settings.response_body_limit,
                settings.delivery_timeout,
            )
    except Exception as exc:
        logger.exception("delivery %s: the attempt failed inside Hookpost", claimed.delivery_id)
        result = AttemptResult(0, "", 0, f"internal error: {type(exc).__name__}: {exc}")
    logger.info(
        "attempt delivery=%s url=%s status=%s duration_ms=%s error=%s",
        claimed.delivery_id,
        redact_url(claimed.url),
        result.status_code,
        result.duration_ms,
        result.error,
    )
    return result
