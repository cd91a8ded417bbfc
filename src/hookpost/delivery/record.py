"""Recording attempts: each attempt's row, its delivery's new state, its endpoint's health
and counts (the rollup), and what the live stream and operational webhooks are told, one transaction per batch."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session, load_only

from hookpost.delivery.claim import Claimed
from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.retry import plan_retry
from hookpost.delivery.sender import AttemptResult
from hookpost.kit.ids import new_id
from hookpost.kit.time import as_utc, utcnow
from hookpost.operational import events as operational_events
from hookpost.settings import Settings
from hookpost.statistics.counts import Counts, store_counts
from hookpost.storage.database import database_unavailable
from hookpost.storage.models import Attempt, Delivery, Endpoint, MessageStatus, TriggerType
from hookpost.stream import events as stream

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sent:
    """One attempt made: its result, and when the API accepted the message it carried."""

    result: AttemptResult
    accepted_at: datetime
    scheduled: bool  # made by the retry schedule, not by a manual resend


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
    created_at: datetime


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
                        Delivery.created_at,
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
        counts = Counts()
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
            counts.attempt(delivery.app_id, delivery.endpoint_id, now, succeeded=result.succeeded)
            was_disabled = endpoint.disabled
            _note_endpoint_health(endpoint, result, settings, now)
            # Published once committed: a stream never shows what the database does not hold.
            events += _stream_events(delivery, endpoint, attempt["id"], result, now, was_disabled=was_disabled)
            # Reset while we were sending (a resend), or our lease ran out and another worker
            # took over: the attempt is on record, the delivery's state is theirs to set.
            state = _settled(delivery, result, settings, now) if _holds(delivery, claimed) else None
            if state is not None:
                states.append(state)
                counts.settled(delivery.app_id, delivery.endpoint_id, delivery.created_at, state["b_status"])
            if _may_report(attempt, state):
                recorded.append(_reported(delivery, state, attempt))
        if attempts:
            await session.execute(insert(_ATTEMPT_TABLE), attempts)
        if states:
            await session.execute(_SET_DELIVERY_STATE, states)
        await store_counts(session, counts)
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
