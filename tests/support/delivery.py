"""Claim, send and record once, in the test's own event loop: the worker's engine does the
same continuously (``hookpost.delivery.engine``); tests drive the pieces with this one-shot form."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from hookpost.delivery.claim import claim
from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.ratelimit import create_rate_limiter
from hookpost.delivery.record import Sent, record, sent_attempts
from hookpost.delivery.send import send_one
from hookpost.delivery.sender import AttemptResult, create_http_client
from hookpost.settings import Settings
from hookpost.storage.database import create_engine, create_sessionmaker


@asynccontextmanager
async def delivery_context(settings: Settings, http_timeout: float = 5.0) -> AsyncIterator[DeliveryContext]:
    """What a worker's engine runs with (a database pool, an HTTP client, the rate limiter),
    built from these settings for the length of a test."""
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    try:
        async with create_http_client(http_timeout, settings.allowed_networks) as http:
            yield DeliveryContext(settings, sessionmaker, http, create_rate_limiter(settings, sessionmaker))
    finally:
        await engine.dispose()


async def deliver_batch(
    context: DeliveryContext,
    delivery_ids: Sequence[str],
    request_ids: Mapping[str, str] | None = None,
    *,
    fill: bool = True,
) -> list[Sent]:
    """Claim, send and record these deliveries together (with ``fill``, and other due ones
    up to a full batch); return the attempts made. The worker's engine does the same
    continuously (``delivery.engine``); this is the one-shot form.

    A delivery that is not ours (held, done, not due), whose endpoint is disabled or whose
    endpoint's rate says not yet, makes no attempt.
    """
    request_ids = request_ids or {}
    room = context.settings.delivery_batch_size if fill else len(delivery_ids)
    claimed, _more_due = await claim(context, delivery_ids, max(room, len(delivery_ids)))
    results = await asyncio.gather(*(send_one(context, c, request_ids.get(c.delivery_id)) for c in claimed))
    sent = [(c, result) for c, result in zip(claimed, results, strict=True) if result is not None]
    postponed = [c for c, result in zip(claimed, results, strict=True) if result is None]
    if sent or postponed:
        for event in await record(context, sent, postponed):
            context.events.publish(event)
    return sent_attempts(sent)


async def deliver(context: DeliveryContext, delivery_id: str) -> AttemptResult | None:
    """Claim, send and record this one delivery; None when it was not sent."""
    sent = await deliver_batch(context, [delivery_id], fill=False)
    return sent[0].result if sent else None
