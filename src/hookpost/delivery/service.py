"""Delivery state in the database: what is due, who holds it, what each attempt did.

The database is the source of truth. The broker only carries nudges ("look at these
deliveries"), so a lost or repeated task can delay a delivery but never lose or double it:
a worker sends only after it has claimed the delivery with a lease.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from http import HTTPStatus
from typing import Any, NamedTuple, cast

import httpx
from sqlalchemy import ColumnElement, Select, Table, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, load_only

from hookpost.delivery.ratelimit import RateLimiter
from hookpost.delivery.retry import next_attempt_at
from hookpost.delivery.sender import AttemptResult, post_webhook
from hookpost.delivery.signing import webhook_headers
from hookpost.endpoints.credentials import outgoing_headers
from hookpost.kit.ids import new_id
from hookpost.kit.time import as_utc, utcnow
from hookpost.kit.urls import redact_url
from hookpost.observability.request_id import request_id_var
from hookpost.operational import events as operational_events
from hookpost.settings import Settings
from hookpost.storage.database import database_unavailable
from hookpost.storage.models import Attempt, Delivery, Endpoint, Message, MessageStatus, TriggerType
from hookpost.stream import events as stream
from hookpost.stream.bus import EventPublisher, NullPublisher

logger = logging.getLogger(__name__)

RETRY_AFTER_STATUSES = frozenset({HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.SERVICE_UNAVAILABLE})


@lru_cache(maxsize=4096)
def origin_of(url: str) -> str:
    """The server a URL's requests go to: scheme, host and port (the URL itself if it does
    not parse; sending it then fails on its own, as that delivery's attempt)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return url
    return f"{parsed.scheme}://{parsed.host}:{parsed.port}"


@dataclass(frozen=True)
class DeliveryContext:
    """What a worker needs besides the database: settings, its pooled HTTP client, the limiter."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    limiter: RateLimiter
    events: EventPublisher = field(default_factory=NullPublisher)  # the live stream
    # Sends in flight per destination (scheme, host, port), made on first use.
    destination_slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)

    def destination_slot(self, url: str) -> asyncio.Semaphore:
        """Bounds this process's concurrent requests to the URL's server: a batch of many
        deliveries to one receiver must not open more connections than it can accept."""
        origin = origin_of(url)
        slot = self.destination_slots.get(origin)
        if slot is None:
            slot = self.destination_slots[origin] = asyncio.Semaphore(self.settings.destination_concurrency)
        return slot


def _is_free(now: datetime) -> ColumnElement[bool]:
    return or_(Delivery.lease_until.is_(None), Delivery.lease_until < now)


def _claimable(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Pending, due and held by nobody."""
    return (Delivery.status == MessageStatus.PENDING, Delivery.next_attempt_at <= now, _is_free(now))


def _sendable(settings: Settings, now: datetime, limit: int) -> Select[str]:
    """The ids of up to ``limit`` claimable deliveries to enabled endpoints, the longest due
    first; on PostgreSQL locked as read, skipping rows another transaction has locked."""
    query = (
        select(Delivery.id)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(*_claimable(now), Endpoint.disabled.is_(False))
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
    )
    if not settings.is_sqlite:
        query = query.with_for_update(of=Delivery, skip_locked=True)
    return query


async def claim_due_for_queue(session: AsyncSession, settings: Settings, limit: int) -> list[str]:
    """Mark up to ``limit`` due deliveries as queued and return their ids.

    ``queued_until`` keeps them from being queued twice while their task waits in the
    broker; if the broker loses the task, they come due again when it passes.
    """
    now = utcnow()
    due = _sendable(settings, now, limit).where(or_(Delivery.queued_until.is_(None), Delivery.queued_until < now))
    ids = list((await session.scalars(due)).all())
    if ids:
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(queued_until=now + timedelta(seconds=settings.requeue_after))
        )
    await session.commit()
    return ids


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
    delivery: _HeldDelivery,
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


@dataclass(frozen=True)
class Claimed:
    """A delivery this worker holds, with what sending it needs (read while claiming)."""

    delivery_id: str
    endpoint_id: str
    url: str
    body: str
    headers: dict[str, str]
    throttle_rate: int | None
    trigger_type: TriggerType
    accepted_at: datetime
    lease: datetime


@dataclass(frozen=True)
class Sent:
    """One attempt made: its result, and when the API accepted the message it carried."""

    result: AttemptResult
    accepted_at: datetime
    scheduled: bool  # made by the retry schedule, not by a manual resend


async def claim(
    context: DeliveryContext,
    delivery_ids: Sequence[str],
    room: int,
    *,
    exclude_endpoints: Collection[str] = (),
    admit: Callable[[Claimed], bool] | None = None,
) -> tuple[list[Claimed], bool]:
    """Lease up to ``room`` deliveries: the nudged ``delivery_ids`` that are due and free,
    then the longest-due others, in one transaction; return them and whether more may be due.

    Deliveries to ``exclude_endpoints`` (their receiver is already as busy as we let it be)
    are left for later. ``admit`` sees each claimed delivery; one it refuses is released
    at once, in the same transaction, so a receiver's backlog never fills the room another
    receiver's deliveries need. One UPDATE takes them all (a row another worker holds is
    left out) and returns what sending needs: a claim costs the same few round trips at
    any size.
    """
    settings = context.settings
    now = utcnow()
    lease = now + timedelta(seconds=settings.lease_seconds)
    nudged = list(delivery_ids[:room])
    fill_room = room - len(nudged)
    wanted: ColumnElement[bool] = Delivery.id.in_(nudged)
    if fill_room > 0:
        fill = _sendable(settings, now, fill_room)
        if exclude_endpoints:
            fill = fill.where(Delivery.endpoint_id.not_in(list(exclude_endpoints)))
        wanted = or_(wanted, Delivery.id.in_(fill.scalar_subquery()))
    conditions = [wanted, *_claimable(now)]
    if exclude_endpoints:
        conditions.append(Delivery.endpoint_id.not_in(list(exclude_endpoints)))
    # The message's columns come back with the lease, as subqueries in RETURNING (SQLite's
    # RETURNING may not name another table): one round trip leases and reads the batch.
    message_column = select(Message.payload).where(Message.id == Delivery.msg_id).correlate(Delivery)
    accepted_column = select(Message.created_at).where(Message.id == Delivery.msg_id).correlate(Delivery)
    async with context.sessionmaker() as session:
        rows = (
            await session.execute(
                update(Delivery)
                .where(*conditions)
                .values(lease_until=lease)
                .returning(
                    Delivery.id,
                    Delivery.trigger_type,
                    Delivery.endpoint_id,
                    Delivery.msg_id,
                    message_column.scalar_subquery(),
                    accepted_column.scalar_subquery(),
                    Delivery.next_attempt_at,
                )
                .execution_options(synchronize_session=False)
            )
        ).all()
        # A full fill says more is likely due; nudges that filled the room say nothing.
        more_due = len(rows) >= fill_room if fill_room > 0 else bool(rows)
        if not rows:
            await session.commit()
            return [], False
        rows = sorted(rows, key=lambda row: as_utc(row[6]))  # the longest due first
        endpoint_ids = {row[2] for row in rows}
        endpoints = {e.id: e for e in await session.scalars(select(Endpoint).where(Endpoint.id.in_(endpoint_ids)))}
        endpoint_headers = {e.id: outgoing_headers(e.headers, e.url_credentials) for e in endpoints.values()}
        claimed: list[Claimed] = []
        released: list[str] = []
        for delivery_id, trigger_type, endpoint_id, msg_id, payload, created_at, _ in rows:
            endpoint = endpoints[endpoint_id]
            if endpoint.disabled:
                # Left pending: it goes out when the endpoint is enabled again.
                released.append(delivery_id)
                continue
            headers = {
                **endpoint_headers[endpoint_id],
                **webhook_headers(msg_id, now, payload, active_secrets(endpoint, now)),
            }
            item = Claimed(
                delivery_id=delivery_id,
                endpoint_id=endpoint_id,
                url=endpoint.url,
                body=payload,
                headers=headers,
                throttle_rate=endpoint.throttle_rate,
                trigger_type=TriggerType(trigger_type),
                accepted_at=as_utc(created_at),
                lease=lease,
            )
            if admit is not None and not admit(item):
                released.append(delivery_id)
                continue
            claimed.append(item)
        if released:
            await session.execute(
                update(Delivery)
                .where(Delivery.id.in_(released))
                .values(lease_until=None)
                .execution_options(synchronize_session=False)
            )
        await session.commit()  # no transaction stays open across the HTTP calls
    return claimed, more_due


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


def _storable(text: str) -> str:
    """Text a database column accepts: PostgreSQL refuses NUL in text."""
    return text.replace("\x00", "\ufffd")


class _HeldDelivery(NamedTuple):
    """The columns of a delivery that recording an attempt reads."""

    id: str
    app_id: str
    msg_id: str
    endpoint_id: str
    status: int
    attempt_count: int
    lease_until: datetime | None


_DELIVERY_TABLE = cast(Table, Delivery.__table__)
_ATTEMPT_TABLE = cast(Table, Attempt.__table__)
# Executed once with a parameter set per delivery (one prepared statement, however many).
_SET_DELIVERY_STATE = (
    update(_DELIVERY_TABLE)
    .where(_DELIVERY_TABLE.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        attempt_count=bindparam("b_attempt_count"),
        next_attempt_at=bindparam("b_next_attempt_at"),
        lease_until=None,
        queued_until=None,
    )
)


def _attempt_row(delivery: _HeldDelivery, claimed: Claimed, result: AttemptResult, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id("atmpt"),
        "app_id": delivery.app_id,
        "msg_id": delivery.msg_id,
        "endpoint_id": delivery.endpoint_id,
        "delivery_id": delivery.id,
        "url": claimed.url,
        "status": MessageStatus.SUCCESS if result.succeeded else MessageStatus.FAIL,
        "trigger_type": claimed.trigger_type,
        "response_status_code": result.status_code,
        "response": _storable(result.response),
        "response_duration_ms": result.duration_ms,
        "error": None if result.error is None else _storable(result.error),
        "created_at": now,
    }


def _holds(delivery: _HeldDelivery, claimed: Claimed) -> bool:
    """Whether our lease on the delivery still stands."""
    return delivery.lease_until is not None and as_utc(delivery.lease_until) == claimed.lease


def _settled(delivery: _HeldDelivery, result: AttemptResult, settings: Settings, now: datetime) -> dict[str, Any]:
    """The delivery's state after an attempt made under our lease, as ``_SET_DELIVERY_STATE``'s parameters."""
    attempt_count = delivery.attempt_count + 1
    status, next_attempt = delivery.status, None
    if result.succeeded:
        status = MessageStatus.SUCCESS
    elif result.status_code == HTTPStatus.GONE:
        status = MessageStatus.FAIL
    else:
        next_attempt = plan_retry(settings, attempt_count, result, now)
        if next_attempt is None:
            status = MessageStatus.FAIL
    return {
        "b_id": delivery.id,
        "b_status": status,
        "b_attempt_count": attempt_count,
        "b_next_attempt_at": next_attempt,
    }


def _may_report(attempt: dict[str, Any], state: dict[str, Any] | None) -> bool:
    """Whether the attempt could be an operational event (``attempt_recorded``): most
    attempts, a first success, cannot, and cost no ORM objects."""
    failed = attempt["status"] != MessageStatus.SUCCESS
    return failed or (state is not None and state["b_attempt_count"] > operational_events.FAILING_AT)


def _reported(
    delivery: _HeldDelivery, state: dict[str, Any] | None, attempt: dict[str, Any]
) -> tuple[Delivery, Attempt]:
    """The delivery as the attempt left it and the attempt, as the objects ``attempt_recorded`` reads
    (never added to the session: their rows are written by the statements above)."""
    columns = delivery._asdict()
    if state is not None:
        columns.update(status=state["b_status"], attempt_count=state["b_attempt_count"])
    return Delivery(**columns), Attempt(**attempt)


def _report_attempts(session: Session, recorded: list[tuple[Delivery, Attempt]]) -> None:
    """Operational events for the attempts that exhausted, made failing or recovered their delivery."""
    for delivery, attempt in recorded:
        operational_events.attempt_recorded(session, delivery, attempt)


# What recording reads of an endpoint: its health, not its encrypted secrets and headers.
_ENDPOINT_HEALTH = load_only(Endpoint.id, Endpoint.disabled, Endpoint.disabled_reason, Endpoint.failing_since)


async def _record(
    context: DeliveryContext, sent: list[tuple[Claimed, AttemptResult]], postponed: list[Claimed]
) -> list[stream.StreamEvent]:
    """Store every attempt of the batch and its delivery's new state in one transaction.

    Core statements, not ORM objects: the deliveries' columns as plain rows, the attempts as
    one executemany insert and the deliveries' states as one executemany update. Endpoints
    (a few per batch, whose health may change) stay ORM entities.
    """
    settings = context.settings
    events: list[stream.StreamEvent] = []
    async with context.sessionmaker() as session:
        delivery_ids = [claimed.delivery_id for claimed, _ in sent] + [claimed.delivery_id for claimed in postponed]
        endpoint_ids = {claimed.endpoint_id for claimed, _ in sent}
        deliveries = {
            row.id: row
            for row in map(
                _HeldDelivery._make,
                await session.execute(
                    select(
                        Delivery.id,
                        Delivery.app_id,
                        Delivery.msg_id,
                        Delivery.endpoint_id,
                        Delivery.status,
                        Delivery.attempt_count,
                        Delivery.lease_until,
                    ).where(Delivery.id.in_(delivery_ids))
                ),
            )
        }
        endpoints: dict[str, Endpoint] = {}
        if endpoint_ids:
            found = await session.scalars(
                select(Endpoint).options(_ENDPOINT_HEALTH).where(Endpoint.id.in_(endpoint_ids))
            )
            endpoints = {e.id: e for e in found}
        now = utcnow()
        states: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        recorded: list[tuple[Delivery, Attempt]] = []
        for claimed in postponed:
            # Not sent (rate, or lease nearly spent): back to the schedule in a second, no attempt spent.
            delivery = deliveries[claimed.delivery_id]
            if _holds(delivery, claimed):
                states.append(
                    {
                        "b_id": delivery.id,
                        "b_status": delivery.status,
                        "b_attempt_count": delivery.attempt_count,
                        "b_next_attempt_at": now + timedelta(seconds=1),
                    }
                )
        for claimed, result in sent:
            delivery, endpoint = deliveries[claimed.delivery_id], endpoints[claimed.endpoint_id]
            attempt = _attempt_row(delivery, claimed, result, now)
            attempts.append(attempt)
            was_disabled = endpoint.disabled
            _note_endpoint_health(endpoint, result, settings, now)
            # Published once committed: a stream never shows what the database does not hold.
            events += _stream_events(delivery, endpoint, attempt["id"], result, now, was_disabled=was_disabled)
            # Reset while we were sending (a resend), or our lease ran out and another worker
            # took over: the attempt is on record, the delivery's state is theirs to set.
            state = _settled(delivery, result, settings, now) if _holds(delivery, claimed) else None
            if state is not None:
                states.append(state)
            if _may_report(attempt, state):
                recorded.append(_reported(delivery, state, attempt))
        if attempts:
            await session.execute(insert(_ATTEMPT_TABLE), attempts)
        if states:
            await session.execute(_SET_DELIVERY_STATE, states)
        if recorded:
            # One hop into the synchronous session for the whole batch, not one per attempt.
            await session.run_sync(_report_attempts, recorded)
        await session.commit()
    return events


async def record(
    context: DeliveryContext, sent: list[tuple[Claimed, AttemptResult]], postponed: list[Claimed]
) -> list[stream.StreamEvent]:
    """Store the attempts and the deliveries' new states, together in one transaction when
    that works; otherwise each alone, so one row the database refuses costs only itself
    (its lease runs out and it is tried again).

    Raises only when the database cannot be reached (``database_unavailable``): then
    nothing was stored, and the caller may record the same batch again later.
    """
    try:
        return await _record(context, sent, postponed)
    except Exception as error:
        if database_unavailable(error):
            raise
        if len(sent) + len(postponed) <= 1:
            logger.exception("recording an attempt failed; the delivery is tried again when its lease ends")
            return []
        logger.exception("recording %d attempts together failed; recording each alone", len(sent) + len(postponed))
    events: list[stream.StreamEvent] = []
    for item in sent:
        events += await _record_alone(context, [item], [])
    for claimed in postponed:
        events += await _record_alone(context, [], [claimed])
    return events


async def _record_alone(
    context: DeliveryContext, sent: list[tuple[Claimed, AttemptResult]], postponed: list[Claimed]
) -> list[stream.StreamEvent]:
    """One item of a batch the database refused: whatever goes wrong costs only this item."""
    try:
        return await _record(context, sent, postponed)
    except Exception:
        logger.exception("recording an attempt failed; the delivery is tried again when its lease ends")
        return []


def sent_attempts(sent: Sequence[tuple[Claimed, AttemptResult]]) -> list[Sent]:
    return [Sent(result, c.accepted_at, c.trigger_type == TriggerType.SCHEDULED) for c, result in sent]


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
        _publish(context, await record(context, sent, postponed))
    return sent_attempts(sent)


async def deliver(context: DeliveryContext, delivery_id: str) -> AttemptResult | None:
    """Claim, send and record this one delivery; None when it was not sent."""
    sent = await deliver_batch(context, [delivery_id], fill=False)
    return sent[0].result if sent else None
