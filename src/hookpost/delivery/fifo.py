"""Destinations delivered in order (fifoEndpoint, rabbitMq, postgres, sqs, amazonS3): an
application's messages handed to the destination's sink (delivery/sinks/: POSTed, published,
inserted, sent or stored) in batches, strictly in the order they were accepted.

Each destination has one ``fifo_lease`` row: its position (everything up to that message id
is delivered), the lease that makes one worker its only sender, and while a batch is being
sent or retried, that batch's bounds. A worker takes the leases of due destinations in one
``UPDATE ... WHERE`` the lease is free (``RETURNING`` what it took), reads the batch after the
position with the poller's query (destinations/poller.py: its settle horizon means a message
committed late is never behind a position already delivered), stores the batch's bounds, sends
it, and only then moves the position, still under its lease. A batch that fails keeps its
bounds, so the retry (by this worker or, after a crash, by another once the lease has run
out) sends the same messages again, and nothing after it goes out until it succeeds: a batch
may repeat, never reorder.

Runs in the worker process on the engine's loop (``FifoRunner.tick``, from the scheduler's
periodic nudge), each destination as its own asyncio task, so one slow receiver holds up only
its own destination.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.due import fifo_destinations
from hookpost.delivery.retry import plan_retry
from hookpost.delivery.sender import AttemptResult
from hookpost.delivery.sinks import sink_for
from hookpost.delivery.sinks.batch import OutgoingBatch, Sink
from hookpost.destinations.kinds import StatusIn
from hookpost.destinations.poller import read_page
from hookpost.destinations.position import start_position
from hookpost.kit.ids import IdPrefix, new_id
from hookpost.kit.time import as_utc, utcnow
from hookpost.storage.models import Destination, DestinationAttempt, FifoLease, Message, MessageStatus
from hookpost.stream import events as stream

logger = logging.getLogger(__name__)

IN_FLIGHT = 32  # FIFO destinations one worker process sends to at once
ATTEMPT_ID_PREFIX: IdPrefix = "datmpt"
_ENABLED = StatusIn.ENABLED.value


@dataclass(frozen=True)
class _Lease:
    destination_id: str
    position: str
    attempt_count: int
    batch_first: str | None
    batch_last: str | None
    until: datetime


async def _open_leases(session: AsyncSession) -> None:
    """Give each enabled FIFO destination without one its row, at the destination's start."""
    new = await session.scalars(
        select(Destination)
        .outerjoin(FifoLease, FifoLease.destination_id == Destination.id)
        .where(*fifo_destinations(), FifoLease.destination_id.is_(None))
    )
    for destination in new.all():
        try:
            async with session.begin_nested():
                session.add(
                    FifoLease(destination_id=destination.id, position=start_position(destination), attempt_count=0)
                )
        except IntegrityError:
            pass  # another worker made it meanwhile
    await session.commit()


def _free_and_due(now: datetime) -> Any:
    return (
        or_(FifoLease.lease_until.is_(None), FifoLease.lease_until < now),
        or_(FifoLease.next_attempt_at.is_(None), FifoLease.next_attempt_at <= now),
    )


async def _take_leases(session: AsyncSession, context: DeliveryContext, limit: int) -> list[_Lease]:
    """Lease up to ``limit`` due FIFO destinations, those served longest ago first."""
    settings = context.settings
    now = utcnow()
    until = now + timedelta(seconds=settings.lease_seconds)
    # Only a destination with messages after its position: an idle one costs an index probe
    # a tick, not a lease taken and given back.
    waiting = exists().where(Message.app_id == Destination.app_id, Message.id > FifoLease.position)
    due = (
        select(FifoLease.destination_id)
        .join(Destination, Destination.id == FifoLease.destination_id)
        .where(*fifo_destinations(), *_free_and_due(now), waiting)
        .order_by(FifoLease.updated_at)
        .limit(limit)
    )
    if not settings.is_sqlite:
        due = due.with_for_update(of=FifoLease, skip_locked=True)
    rows = await session.execute(
        update(FifoLease)
        # The lease is checked again in the UPDATE itself: of two workers, only one takes it.
        .where(FifoLease.destination_id.in_(due.scalar_subquery()), *_free_and_due(now))
        .values(lease_until=until)
        .returning(
            FifoLease.destination_id,
            FifoLease.position,
            FifoLease.attempt_count,
            FifoLease.batch_first,
            FifoLease.batch_last,
        )
        .execution_options(synchronize_session=False)
    )
    leases = [_Lease(*row, until=until) for row in rows.all()]
    await session.commit()
    return leases


async def _update_held(session: AsyncSession, lease: _Lease, **values: Any) -> bool:
    """Change the destination's row if our lease on it still stands; whether it did."""
    result = await session.execute(
        update(FifoLease)
        .where(FifoLease.destination_id == lease.destination_id, FifoLease.lease_until == lease.until)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class _Batch:
    outgoing: OutgoingBatch
    sink: Sink
    target: str  # where it goes, fit to show and to record
    batch_size: int  # the destination's: a full batch is followed at once by the next

    @property
    def messages(self) -> list[Message]:
        return self.outgoing.messages


def _secrets(destination: Destination, now: datetime) -> list[str]:
    secrets = [destination.secret] if destination.secret else []
    expires = destination.previous_secret_expires_at
    if destination.previous_secret and expires is not None and as_utc(expires) > now:
        secrets.append(destination.previous_secret)
    return secrets


async def _next_batch(
    session: AsyncSession, context: DeliveryContext, destination: Destination, lease: _Lease
) -> list[Message] | None:
    """The batch to send now: the stored one again, else the next one if full or waited long
    enough; None when nothing is to go out yet (the position moves past what the filters skip)."""
    settings = context.settings
    page = await read_page(session, destination, lease.position, destination.batch_size, settings)
    if lease.batch_last is not None:
        batch_last = lease.batch_last
        same = [message for message in page.messages if message.id <= batch_last]
        if same:
            return same
        # Its messages are gone (deleted with their application's data): nothing to repeat.
        await _update_held(session, lease, position=batch_last, batch_first=None, batch_last=None, lease_until=None)
        return None
    messages = page.messages
    if not messages:
        # Everything up to the page's end is read and nothing there is for this destination.
        await _update_held(session, lease, position=page.iterator, lease_until=None)
        return None
    oldest = as_utc(messages[0].created_at)
    if len(messages) < destination.batch_size and utcnow() - oldest < timedelta(seconds=destination.max_wait_secs):
        await _update_held(session, lease, lease_until=None)
        return None
    return messages


async def _prepare(context: DeliveryContext, lease: _Lease) -> _Batch | None:
    """Read the batch and store its bounds (so a retry sends the same); None: nothing to send."""
    async with context.sessionmaker() as session:
        destination = await session.get(Destination, lease.destination_id)
        if destination is None or destination.status != _ENABLED:
            await _update_held(session, lease, lease_until=None)
            await session.commit()
            return None
        messages = await _next_batch(session, context, destination, lease)
        if messages is None:
            await session.commit()
            return None
        first, last = messages[0].id, messages[-1].id
        if lease.batch_last is None and not await _update_held(session, lease, batch_first=first, batch_last=last):
            await session.commit()
            return None  # our lease ran out meanwhile: the next holder sends it
        await session.commit()
        now = utcnow()
        sink = sink_for(destination.type)
        config = dict(destination.config)  # decrypted: kept only for this attempt
        outgoing = OutgoingBatch(destination.id, destination.app_id, config, _secrets(destination, now), messages, now)
        return _Batch(outgoing, sink, sink.target(config), destination.batch_size)


async def _send(context: DeliveryContext, lease: _Lease, batch: _Batch) -> AttemptResult:
    settings = context.settings
    try:
        async with context.destination_slot(batch.target):
            if utcnow() + timedelta(seconds=settings.delivery_timeout) >= lease.until:
                # Waited so long for a slot to the receiver that the lease could end mid-send.
                return AttemptResult(0, "", 0, "not sent: too little of the lease was left")
            result = await batch.sink.send(context, batch.outgoing)
    except Exception as exc:
        logger.exception("FIFO destination %s: the attempt failed inside Hookpost", lease.destination_id)
        result = AttemptResult(0, "", 0, f"internal error: {type(exc).__name__}: {exc}")
    logger.info(
        "fifo attempt destination=%s target=%s messages=%d status=%s duration_ms=%s error=%s",
        lease.destination_id,
        batch.target,
        len(batch.messages),
        result.status_code,
        result.duration_ms,
        result.error,
    )
    return result


async def _record(
    context: DeliveryContext, lease: _Lease, batch: _Batch, result: AttemptResult, *, go_on: bool
) -> _Lease | None:
    """Store the attempt and the destination's new state; the lease kept (and returned,
    extended) when a full batch succeeded and ``go_on``, so the holder sends the next one at once."""
    settings = context.settings
    now = utcnow()
    first, last = batch.messages[0], batch.messages[-1]
    attempt_id = new_id(ATTEMPT_ID_PREFIX)
    disabled = False
    async with context.sessionmaker() as session:
        session.add(
            DestinationAttempt(
                id=attempt_id,
                destination_id=lease.destination_id,
                app_id=first.app_id,
                first_msg_id=first.id,
                last_msg_id=last.id,
                message_count=len(batch.messages),
                url=batch.target,
                status=MessageStatus.SUCCESS if result.succeeded else MessageStatus.FAIL,
                response_status_code=result.status_code,
                response=result.response,
                response_duration_ms=result.duration_ms,
                error=result.error,
                created_at=now,
            )
        )
        next_lease: _Lease | None = None
        if result.succeeded:
            go_on = go_on and len(batch.messages) >= batch.batch_size
            until = now + timedelta(seconds=settings.lease_seconds) if go_on else None
            values: dict[str, Any] = {
                "position": last.id,
                "batch_first": None,
                "batch_last": None,
                "attempt_count": 0,
                "next_attempt_at": None,
                "last_error": None,
                "lease_until": until,
            }
            if until is not None:
                next_lease = _Lease(lease.destination_id, last.id, 0, None, None, until)
        else:
            attempts = lease.attempt_count + 1
            retry_at = plan_retry(settings, attempts, result, now)
            reason = f"the batch {first.id} to {last.id} failed (attempt {attempts}): {result.error}"
            if retry_at is None:
                # The schedule is spent: disabled, keeping the batch; enabled again, it starts over with it.
                await session.execute(
                    update(Destination).where(Destination.id == lease.destination_id).values(status="disabled")
                )
                reason = f"disabled: {reason}"
                attempts = 0
                disabled = True
            values = {"attempt_count": attempts, "next_attempt_at": retry_at, "last_error": reason, "lease_until": None}
        if not await _update_held(session, lease, **values):
            logger.warning("FIFO destination %s: our lease ran out during the attempt", lease.destination_id)
            next_lease = None
        await session.commit()
    # Once stored, as an endpoint's attempt is (record.py): the destination's page shows it live.
    context.events.publish(
        stream.destination_attempt_recorded(
            succeeded=result.succeeded,
            app_id=first.app_id,
            destination_id=lease.destination_id,
            attempt_id=attempt_id,
            first_msg_id=first.id,
            last_msg_id=last.id,
            message_count=len(batch.messages),
            status_code=result.status_code or None,
            disabled=disabled,
            at=now,
        )
    )
    return next_lease


async def serve_destination(
    context: DeliveryContext, lease: _Lease, stopping: Callable[[], bool] = lambda: False
) -> None:
    """Send the leased destination's batches while they are full and succeed, and the worker
    is not stopping; then let go."""
    held: _Lease | None = lease
    while held is not None:
        batch = await _prepare(context, held)
        if batch is None:
            return
        result = await _send(context, held, batch)
        held = await _record(context, held, batch, result, go_on=not stopping())


class FifoRunner:
    """One worker process's FIFO deliveries: each ``tick`` leases due destinations (as many as
    it has room for) and serves each as its own asyncio task. Lives on one event loop."""

    def __init__(self, context: DeliveryContext, in_flight_limit: int = IN_FLIGHT) -> None:
        self._context = context
        self._limit = in_flight_limit
        self._serving: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def in_flight(self) -> int:
        return len(self._serving)

    async def tick(self) -> int:
        """Lease what is due and start serving it; return how many destinations were taken."""
        room = self._limit - len(self._serving)
        if room <= 0 or self._stopping:
            return 0
        async with self._context.sessionmaker() as session:
            await _open_leases(session)
            leases = await _take_leases(session, self._context, room)
        for lease in leases:
            task = asyncio.create_task(self._serve(lease), name=f"hookpost-fifo-{lease.destination_id}")
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)
        return len(leases)

    async def _serve(self, lease: _Lease) -> None:
        try:
            await serve_destination(self._context, lease, lambda: self._stopping)
        except Exception:
            # The lease runs out and the batch (its bounds stored) is sent again then.
            logger.exception("FIFO destination %s: serving failed", lease.destination_id)

    async def stop(self) -> None:
        """Take nothing more; let the batches in flight finish and be recorded (the rest of a
        backlog is left to the next holder of the lease)."""
        self._stopping = True
        await self.wait_idle()

    async def wait_idle(self) -> None:
        """Until every destination this runner serves now is let go."""
        if self._serving:
            await asyncio.gather(*self._serving, return_exceptions=True)
