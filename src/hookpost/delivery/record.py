"""Recording attempts: each attempt's row, its delivery's new state, its endpoint's health
and counts (the rollup), and what the live stream and operational webhooks are told, one transaction per batch."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any, NamedTuple, cast

from sqlalchemy import ARRAY, DateTime, Integer, String, Table, any_, bindparam, func, insert, select, update
from sqlalchemy import cast as cast_as
from sqlalchemy.ext.asyncio import AsyncSession
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
    endpoint: Endpoint | None,
    attempt_id: str,
    result: AttemptResult,
    now: datetime,
    *,
    was_disabled: bool,
) -> list[stream.StreamEvent]:
    """The live stream's events for an attempt: its outcome, and the endpoint's disabling if
    it caused it (``endpoint``: read only when the batch holds a failure, the only disabling cause)."""
    found = [
        stream.attempt_recorded(
            succeeded=result.succeeded,
            app_id=delivery.app_id,
            msg_id=delivery.msg_id,
            endpoint_id=delivery.endpoint_id,
            attempt_id=attempt_id,
            status_code=result.status_code,
            at=now,
        )
    ]
    if endpoint is not None and endpoint.disabled and not was_disabled:
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


def _as_claimed(claimed: Claimed) -> _HeldDelivery:
    """The delivery as its claim read it: as it still is while our lease stands."""
    return _HeldDelivery(
        claimed.delivery_id,
        claimed.app_id,
        claimed.msg_id,
        claimed.endpoint_id,
        MessageStatus.PENDING,
        claimed.attempt_count,
        claimed.lease,
        claimed.created_at,
    )


_DELIVERY_TABLE = cast(Table, Delivery.__table__)
_ATTEMPT_TABLE = cast(Table, Attempt.__table__)
_ENDPOINT_TABLE = cast(Table, Endpoint.__table__)


def _arrays(names_and_types: Sequence[tuple[str, Any]], alias: str) -> Any:
    """PostgreSQL: rows given as one array parameter per column (``unnest``), so a batch of any
    size is one statement with one text (one prepared statement), not one per row."""
    return (
        func.unnest(*(cast_as(bindparam(name), ARRAY(type_)) for name, type_ in names_and_types))
        .table_valued(*(name for name, _ in names_and_types), name=alias)
        .render_derived()
    )


_STATE_COLUMNS = (
    ("b_id", String()),
    ("b_msg_id", String()),
    ("b_status", Integer()),
    ("b_attempt_count", Integer()),
    ("b_next_attempt_at", DateTime(timezone=True)),
    ("b_lease", DateTime(timezone=True)),
)
_states = _arrays(_STATE_COLUMNS, "state")
# A batch of successes (its endpoints are not read): each endpoint's run of failures, if one
# had begun, ends. On PostgreSQL inside the states' update, not a statement of its own.
_HEAL_ENDPOINTS = (
    update(_ENDPOINT_TABLE)
    .where(
        _ENDPOINT_TABLE.c.id == any_(cast_as(bindparam("healed"), ARRAY(String()))),
        _ENDPOINT_TABLE.c.failing_since.is_not(None),
    )
    .values(failing_since=None, updated_at=bindparam("updated_at_now"))
)
# PostgreSQL: the deliveries' new states in one statement, each only while our lease on it
# stands (``lease_until`` as we set it): a resend, or another worker that took over when our
# lease ran out, keeps the state it set. Returns the deliveries set. The ids and message ids
# also as ``= ANY(...)``: a join with the unnested rows alone was planned as a hash join over
# a sequential scan of every delivery (EXPLAIN: 2,000 rows read to set 33); with them, the
# primary key's index in the weeks the message ids name.
_SET_HELD_STATES = (
    update(_DELIVERY_TABLE)
    .add_cte(_HEAL_ENDPOINTS.cte("healed"))
    .where(
        _DELIVERY_TABLE.c.id == any_(cast_as(bindparam("b_id"), ARRAY(String()))),
        _DELIVERY_TABLE.c.msg_id == any_(cast_as(bindparam("b_msg_id"), ARRAY(String()))),
        _DELIVERY_TABLE.c.id == _states.c.b_id,
        _DELIVERY_TABLE.c.msg_id == _states.c.b_msg_id,
        _DELIVERY_TABLE.c.lease_until == _states.c.b_lease,
    )
    .values(
        status=_states.c.b_status,
        attempt_count=_states.c.b_attempt_count,
        next_attempt_at=_states.c.b_next_attempt_at,
        lease_until=None,
        queued_until=None,
        # Named: the two tables' ``updated_at`` defaults would share one parameter name.
        updated_at=bindparam("updated_at_now"),
    )
    .returning(_DELIVERY_TABLE.c.id)
)
# SQLite: executed once with a parameter set per delivery whose lease was read to stand.
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
# PostgreSQL: the batch's attempts as one INSERT of one array a column.
_ATTEMPT_COLUMNS = [column.name for column in _ATTEMPT_TABLE.columns]
_attempts = _arrays([(column.name, column.type) for column in _ATTEMPT_TABLE.columns], "attempt_rows")
_INSERT_ATTEMPTS = insert(_ATTEMPT_TABLE).from_select(_ATTEMPT_COLUMNS, select(*_attempts.c))


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


def _settled(delivery: _HeldDelivery, result: AttemptResult, settings: Settings, now: datetime) -> dict[str, Any]:
    """The delivery's state after an attempt made under our lease, as the states' update's parameters."""
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
    return _state(delivery, status, attempt_count, next_attempt)


def _state(delivery: _HeldDelivery, status: int, attempt_count: int, next_attempt: datetime | None) -> dict[str, Any]:
    return {
        "b_id": delivery.id,
        "b_msg_id": delivery.msg_id,
        "b_status": status,
        "b_attempt_count": attempt_count,
        "b_next_attempt_at": next_attempt,
        "b_lease": delivery.lease_until,
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
_DELIVERY_ROW = select(
    Delivery.id,
    Delivery.app_id,
    Delivery.msg_id,
    Delivery.endpoint_id,
    Delivery.status,
    Delivery.attempt_count,
    Delivery.lease_until,
    Delivery.created_at,
)


async def _current(session: AsyncSession, delivery_ids: Collection[str]) -> dict[str, _HeldDelivery]:
    """The deliveries as they are now (not as claimed)."""
    if not delivery_ids:
        return {}
    rows = await session.execute(_DELIVERY_ROW.where(Delivery.id.in_(delivery_ids)))
    return {row.id: row for row in map(_HeldDelivery._make, rows)}


async def _set_states(
    session: AsyncSession, settings: Settings, states: list[dict[str, Any]], healed: Collection[str]
) -> set[str]:
    """Set each delivery's new state if our lease on it still stands; return those set.
    ``healed``: endpoints whose run of failures, if any, a success ended."""
    if not settings.is_sqlite:
        parameters = {name: [state[name] for state in states] for name, _ in _STATE_COLUMNS}
        set_ids = await session.scalars(
            _SET_HELD_STATES, {**parameters, "healed": list(healed), "updated_at_now": utcnow()}
        )
        return set(set_ids)
    # SQLite: transactions begin IMMEDIATE (one writer at a time), so what the read finds holds until the commit.
    leases = {state["b_id"]: state["b_lease"] for state in states}
    found = await session.execute(select(Delivery.id, Delivery.lease_until).where(Delivery.id.in_(leases)))
    held = {row.id for row in found if row.lease_until is not None and as_utc(row.lease_until) == leases[row.id]}
    held_states = [state for state in states if state["b_id"] in held]
    if held_states:
        await session.execute(_SET_DELIVERY_STATE, held_states)
    if healed:
        await session.execute(
            update(_ENDPOINT_TABLE)
            .where(_ENDPOINT_TABLE.c.id.in_(healed), _ENDPOINT_TABLE.c.failing_since.is_not(None))
            .values(failing_since=None)
        )
    return held


async def _record(
    context: DeliveryContext, sent: list[tuple[Claimed, AttemptResult]], postponed: list[Claimed]
) -> list[stream.StreamEvent]:
    """Store every attempt of the batch and its delivery's new state in one transaction.

    Core statements, not ORM objects. The deliveries as their claim read them (while our
    lease stands, nothing else changes them): their new states set in one statement that
    checks the lease, the attempts inserted in one statement (on PostgreSQL; executemany on
    SQLite). Endpoints are read (as ORM entities, whose health may change) only in a batch
    with a failure; a batch of successes only ends their runs of failures, if any.
    """
    settings = context.settings
    events: list[stream.StreamEvent] = []
    async with context.sessionmaker() as session:
        now = utcnow()
        failures = any(not result.succeeded for _, result in sent)
        endpoints: dict[str, Endpoint] = {}
        if failures:
            found = await session.scalars(
                select(Endpoint)
                .options(_ENDPOINT_HEALTH)
                .where(Endpoint.id.in_({claimed.endpoint_id for claimed, _ in sent}))
            )
            endpoints = {e.id: e for e in found}
        # Not sent (rate, or lease nearly spent): back to the schedule in a second, no attempt spent.
        states = [
            _state(held, held.status, held.attempt_count, now + timedelta(seconds=1))
            for held in map(_as_claimed, postponed)
        ]
        # The states if our leases stand: which do is known once they are set.
        if_held = [_settled(_as_claimed(claimed), result, settings, now) for claimed, result in sent]
        healed = set() if failures else {claimed.endpoint_id for claimed, _ in sent}
        set_ids = await _set_states(session, settings, states + if_held, healed) if states or if_held else set()
        attempts: list[dict[str, Any]] = []
        counts = Counts()
        reports: list[tuple[_HeldDelivery, dict[str, Any] | None, dict[str, Any]]] = []
        for (claimed, result), settled in zip(sent, if_held, strict=True):
            delivery = _as_claimed(claimed)
            attempt = _attempt_row(delivery, claimed, result, now)
            attempts.append(attempt)
            counts.attempt(delivery.app_id, delivery.endpoint_id, now, succeeded=result.succeeded)
            endpoint = endpoints.get(claimed.endpoint_id)
            was_disabled = endpoint is not None and endpoint.disabled
            if endpoint is not None:
                _note_endpoint_health(endpoint, result, settings, now)
            # Published once committed: a stream never shows what the database does not hold.
            events += _stream_events(delivery, endpoint, attempt["id"], result, now, was_disabled=was_disabled)
            # Reset while we were sending (a resend), or our lease ran out and another worker
            # took over: the attempt is on record, the delivery's state is theirs to set.
            state = settled if claimed.delivery_id in set_ids else None
            if state is not None:
                counts.settled(delivery.app_id, delivery.endpoint_id, delivery.created_at, state["b_status"])
            if _may_report(attempt, state):
                reports.append((delivery, state, attempt))
        if attempts:
            if settings.is_sqlite:
                await session.execute(insert(_ATTEMPT_TABLE), attempts)
            else:
                columns = {name: [attempt[name] for attempt in attempts] for name in _ATTEMPT_COLUMNS}
                await session.execute(_INSERT_ATTEMPTS, columns)
        await store_counts(session, counts)
        # A delivery whose lease we lost is reported as it is now, not as we claimed it (rare: read only then).
        lost = await _current(session, [delivery.id for delivery, state, _ in reports if state is None])
        recorded = [
            _reported(delivery if state is not None else lost[delivery.id], state, attempt)
            for delivery, state, attempt in reports
            if state is not None or delivery.id in lost
        ]
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
