"""Delivery state in the database: what is due, who holds it, what each attempt did.

The database is the source of truth. The broker only carries nudges ("look at these
deliveries"), so a lost or repeated task can delay a delivery but never lose or double it:
a worker sends only after it has claimed the delivery with a lease.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from http import HTTPStatus

import httpx
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookpost.delivery.ratelimit import RateLimiter
from hookpost.delivery.retry import next_attempt_at
from hookpost.delivery.sender import AttemptResult, post_webhook
from hookpost.delivery.signing import webhook_headers
from hookpost.kit.ids import new_id
from hookpost.kit.time import as_utc, utcnow
from hookpost.settings import Settings
from hookpost.storage.models import Attempt, Delivery, Endpoint, Message, MessageStatus
from hookpost.stream import events as stream
from hookpost.stream.bus import EventPublisher, NullPublisher

logger = logging.getLogger(__name__)

RETRY_AFTER_STATUSES = frozenset({HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.SERVICE_UNAVAILABLE})


@dataclass(frozen=True)
class DeliveryContext:
    """What a worker needs besides the database: settings, its pooled HTTP client, the limiter."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    limiter: RateLimiter
    events: EventPublisher = field(default_factory=NullPublisher)  # the live stream


def _is_free(now: datetime) -> ColumnElement[bool]:
    return or_(Delivery.lease_until.is_(None), Delivery.lease_until < now)


async def claim_due_for_queue(session: AsyncSession, settings: Settings, limit: int) -> list[str]:
    """Mark up to ``limit`` due deliveries as queued and return their ids.

    ``queued_until`` keeps them from being queued twice while their task waits in the
    broker; if the broker loses the task, they come due again when it passes.
    """
    now = utcnow()
    due = (
        select(Delivery.id)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(
            Delivery.status == MessageStatus.PENDING,
            Delivery.next_attempt_at <= now,
            or_(Delivery.queued_until.is_(None), Delivery.queued_until < now),
            _is_free(now),
            Endpoint.disabled.is_(False),
        )
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
    )
    if not settings.is_sqlite:
        due = due.with_for_update(of=Delivery, skip_locked=True)
    ids = list((await session.scalars(due)).all())
    if ids:
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(queued_until=now + timedelta(seconds=settings.requeue_after))
        )
    await session.commit()
    return ids


async def _claim(session: AsyncSession, delivery_id: str, settings: Settings) -> datetime | None:
    """Take the delivery if it is due and nobody holds it; return our lease's end, or None."""
    now = utcnow()
    lease = now + timedelta(seconds=settings.lease_seconds)
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.status == MessageStatus.PENDING,
            Delivery.next_attempt_at <= now,
            _is_free(now),
        )
        .values(lease_until=lease)
    )
    await session.commit()
    return lease if result.rowcount else None  # type: ignore[attr-defined]


def active_secrets(endpoint: Endpoint, now: datetime) -> list[str]:
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and as_utc(expires) > now:
        secrets.append(endpoint.previous_secret)
    return secrets


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A Retry-After header in seconds, from either of its forms (delta-seconds, HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (as_utc(when) - now).total_seconds())


def plan_retry(settings: Settings, attempts_made: int, result: AttemptResult, now: datetime) -> datetime | None:
    """When to try again after a failure; None once the schedule is spent.

    A 429 or 503 with Retry-After is honoured, capped at ``retry_after_max``, and never
    makes the retry sooner than the schedule's own next step.
    """
    scheduled = next_attempt_at(settings.retry_schedule, attempts_made, now, settings.retry_jitter)
    if scheduled is None:
        return None
    if result.status_code in RETRY_AFTER_STATUSES:
        asked = retry_after_seconds(result.retry_after, now)
        if asked is not None:
            return max(scheduled, now + timedelta(seconds=min(asked, settings.retry_after_max)))
    return scheduled


def _note_endpoint_health(endpoint: Endpoint, result: AttemptResult, settings: Settings, now: datetime) -> None:
    """Track failure runs; disable an endpoint that is gone or has failed for too long."""
    if result.succeeded:
        if endpoint.failing_since is not None:
            endpoint.failing_since = None
        return
    if result.status_code == HTTPStatus.GONE:
        _disable(endpoint, "the receiver answered 410 Gone")
        return
    if endpoint.failing_since is None:
        endpoint.failing_since = now
    elif now - as_utc(endpoint.failing_since) >= timedelta(seconds=settings.disable_after):
        _disable(endpoint, f"every attempt has failed since {as_utc(endpoint.failing_since).isoformat()}")


def _disable(endpoint: Endpoint, reason: str) -> None:
    endpoint.disabled = True
    endpoint.disabled_reason = reason
    logger.warning("endpoint %s disabled: %s", endpoint.id, reason)


def _stream_events(
    delivery: Delivery,
    endpoint: Endpoint,
    attempt_id: str,
    result: AttemptResult,
    now: datetime,
    *,
    was_disabled: bool,
) -> list[stream.StreamEvent]:
    """The live stream's events for an attempt: its outcome, and the endpoint's disabling if it caused it."""
    found = [
        stream.attempt_recorded(
            succeeded=result.succeeded,
            app_id=delivery.app_id,
            msg_id=delivery.msg_id,
            endpoint_id=endpoint.id,
            attempt_id=attempt_id,
            status_code=result.status_code,
            at=now,
        )
    ]
    if endpoint.disabled and not was_disabled:
        found.append(
            stream.endpoint_disabled(
                app_id=delivery.app_id,
                endpoint_id=endpoint.id,
                reason=endpoint.disabled_reason,
                msg_id=delivery.msg_id,
                attempt_id=attempt_id,
                at=now,
            )
        )
    return found


def _publish(context: DeliveryContext, events: list[stream.StreamEvent]) -> None:
    for event in events:
        context.events.publish(event)


async def _postpone(context: DeliveryContext, delivery_id: str, until: datetime) -> None:
    """Give the delivery back without an attempt: the scheduler queues it again when due."""
    async with context.sessionmaker() as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(lease_until=None, queued_until=None, next_attempt_at=until)
        )
        await session.commit()


async def deliver(context: DeliveryContext, delivery_id: str) -> AttemptResult | None:
    """Claim, send and record one delivery; None when it was not sent (not ours, or not yet)."""
    settings = context.settings
    async with context.sessionmaker() as session:
        lease = await _claim(session, delivery_id, settings)
        if lease is None:
            return None
        row = (
            await session.execute(
                select(Delivery, Message, Endpoint)
                .join(Message, Message.id == Delivery.msg_id)
                .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
                .where(Delivery.id == delivery_id)
            )
        ).one()
        delivery, message, endpoint = row
        if endpoint.disabled:
            # Left pending: it goes out when the endpoint is enabled again.
            delivery.lease_until = None
            await session.commit()
            return None
        now = utcnow()
        # Read now: the rollback below expires the loaded rows.
        endpoint_id, url, body, throttle_rate = endpoint.id, endpoint.url, message.payload, endpoint.throttle_rate
        trigger_type = delivery.trigger_type
        headers = {
            **{str(k): str(v) for k, v in endpoint.headers.items()},
            **webhook_headers(message.id, now, body, active_secrets(endpoint, now)),
        }
        await session.rollback()  # hold no transaction open across the HTTP call

    if throttle_rate is not None and not await context.limiter.try_acquire(endpoint_id, throttle_rate):
        # Over the endpoint's rate: wait for the next second, never dropped, no attempt spent.
        await _postpone(context, delivery_id, utcnow() + timedelta(seconds=1))
        return None

    result = await post_webhook(
        context.http, url, body, headers, settings.response_body_limit, settings.delivery_timeout
    )

    async with context.sessionmaker() as session:
        delivery = await session.get_one(Delivery, delivery_id)
        now = utcnow()
        attempt_id = new_id("atmpt")
        session.add(
            Attempt(
                id=attempt_id,
                app_id=delivery.app_id,
                msg_id=delivery.msg_id,
                endpoint_id=delivery.endpoint_id,
                delivery_id=delivery.id,
                url=url,
                status=MessageStatus.SUCCESS if result.succeeded else MessageStatus.FAIL,
                trigger_type=trigger_type,
                response_status_code=result.status_code,
                response=result.response,
                response_duration_ms=result.duration_ms,
                error=result.error,
                created_at=now,
            )
        )
        endpoint = await session.get_one(Endpoint, endpoint_id)
        was_disabled = endpoint.disabled
        _note_endpoint_health(endpoint, result, settings, now)
        # Published once committed: a stream never shows what the database does not hold.
        events = _stream_events(delivery, endpoint, attempt_id, result, now, was_disabled=was_disabled)
        if delivery.lease_until is None or as_utc(delivery.lease_until) != lease:
            # Reset while we were sending (a resend), or our lease ran out and another worker
            # took over: the attempt is on record, the delivery's state is theirs to set.
            await session.commit()
            _publish(context, events)
            return result
        delivery.attempt_count += 1
        delivery.lease_until = None
        delivery.queued_until = None
        if result.succeeded:
            delivery.status = MessageStatus.SUCCESS
            delivery.next_attempt_at = None
        elif result.status_code == HTTPStatus.GONE:
            delivery.status = MessageStatus.FAIL
            delivery.next_attempt_at = None
        else:
            delivery.next_attempt_at = plan_retry(settings, delivery.attempt_count, result, now)
            if delivery.next_attempt_at is None:
                delivery.status = MessageStatus.FAIL
        await session.commit()
    _publish(context, events)
    logger.info(
        "attempt delivery=%s url=%s status=%s duration_ms=%s error=%s",
        delivery_id,
        url,
        result.status_code,
        result.duration_ms,
        result.error,
    )
    return result
