"""The delivery engine: many deliveries in flight in one worker process, on one event loop.

Celery tasks only nudge it ("these deliveries are due"); the lease in the database is the
guarantee. The engine claims what it has room for (the nudged deliveries first, then the
longest-due others), starts each send as its own asyncio task, and records finished
attempts in batches of whatever has finished since the previous record, so no send
ever waits for a slower one and a batch never waits for its slowest member.

Bounds: at most ``in_flight_limit`` deliveries held per process (claimed and not yet
recorded); of those, at most ``HOOKPOST_APPLICATION_IN_FLIGHT`` for one application, and at
most twice ``HOOKPOST_DESTINATION_CONCURRENCY`` waiting on one receiver (scheme, host, port:
claimed and not yet answered), of which ``HOOKPOST_DESTINATION_CONCURRENCY`` are sending at
once (``delivery.shares``). A receiver or an application at its bound is left out of the next
claims until one of its sends finishes, so one application's backlog, slow or silent
receivers, or many receivers never take the room another application's deliveries need.

``EngineThread`` runs an engine on an event loop of its own thread: a Celery pool
process's main thread stays Celery's, and its tasks hand over ids and return.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import suppress
from typing import Any, TypeVar

from hookpost.delivery.claim import Claimed, claim
from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.record import Sent, record, sent_attempts
from hookpost.delivery.send import send_one
from hookpost.delivery.sender import AttemptResult
from hookpost.delivery.shares import Shares
from hookpost.kit.outage import Outage
from hookpost.observability import tracing
from hookpost.storage.database import database_unavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")
RECORD_WINDOW = 0.02  # seconds finished sends may wait to be recorded together with others
STREAM_FLUSH_TIMEOUT = 1.0  # seconds a stopping engine waits for its stream events to go out


class DeliveryEngine:
    """Claims, sends and records deliveries continuously, within its bounds. Lives on one loop."""

    def __init__(
        self,
        context: DeliveryContext,
        in_flight_limit: int,
        on_sent: Callable[[Sequence[Sent]], None] | None = None,
        on_in_flight: Callable[[int], None] | None = None,
    ) -> None:
        self._context = context
        self._limit = in_flight_limit
        # Database work is per batch: claim only once this much room is free (or none is in
        # use), and record up to this many finished sends at a time.
        settings = context.settings
        self._batch = max(1, min(settings.delivery_batch_size, in_flight_limit // 2))
        self._shares = Shares(
            receiver_limit=max(2 * settings.destination_concurrency, self._batch),
            application_limit=settings.application_in_flight,
            margin=self._batch // 2,
        )
        # The smallest claim worth a round trip while others are in flight.
        self._least_claim = max(
            1, min(self._batch // 2, self._shares.receivers.limit // 2, self._shares.applications.limit // 2)
        )
        self._on_sent = on_sent
        self._on_in_flight = on_in_flight  # told the count held whenever it changed (worker saturation)
        self._reported_in_flight = -1
        self._nudged: dict[str, str | None] = {}  # delivery id -> request id, oldest first
        # Tracing on: the dispatch span of a nudged delivery, and the send span of a finished one.
        self._dispatched: dict[str, str] = {}
        self._sent_spans: dict[str, str] = {}
        self._in_flight = 0
        self._more_due = False
        self._finished: list[tuple[Claimed, AttemptResult | None]] = []
        self._claim_wakeup = asyncio.Event()
        self._record_wakeup = asyncio.Event()
        self._record_batch_full = asyncio.Event()
        self._has_room = asyncio.Event()
        self._has_room.set()
        self._stopping = asyncio.Event()
        self._sends: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        # While the database is down: a few log lines, and claims and records retried with
        # growing pauses (README: Reliability).
        self._claim_outage = Outage(logger, "claiming deliveries")
        self._record_outage = Outage(logger, "recording attempts")

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="hookpost-engine-claim"),
            asyncio.create_task(self._record_loop(), name="hookpost-engine-record"),
        ]

    def nudge(
        self,
        delivery_ids: Sequence[str],
        request_ids: Mapping[str, str] | None = None,
        traceparents: Mapping[str, str] | None = None,
    ) -> None:
        """These deliveries may be due: claim them when there is room."""
        request_ids = request_ids or {}
        for delivery_id in delivery_ids:
            self._nudged.setdefault(delivery_id, request_ids.get(delivery_id))
        if traceparents:
            self._dispatched.update(traceparents)
        self._update_room()
        self._claim_wakeup.set()

    async def wait_for_room(self) -> None:
        """Until the nudges taken so far leave room for more: a worker's intake follows its pace."""
        await self._has_room.wait()

    async def stop(self) -> None:
        """Claim nothing more, let every send in flight finish and be recorded, flush the stream.

        Deliveries claimed but not yet started go back to the schedule without an attempt.
        """
        self._stopping.set()
        self._claim_wakeup.set()
        self._record_wakeup.set()
        await asyncio.gather(*self._loops)
        with suppress(TimeoutError):
            async with asyncio.timeout(STREAM_FLUSH_TIMEOUT):
                await self._context.events.flush()

    def _update_room(self) -> None:
        """After every change of what is held (a claim, its failure, a record) and every nudge."""
        if self._in_flight + len(self._nudged) < self._limit:
            self._has_room.set()
        else:
            self._has_room.clear()
        if self._on_in_flight is not None and self._in_flight != self._reported_in_flight:
            self._reported_in_flight = self._in_flight
            self._on_in_flight(self._in_flight)

    def _admit(self, claimed: Claimed) -> bool:
        if not self._shares.admit(claimed):
            self._more_due = True  # released for now: its receiver's or application's turn comes back
            return False
        self._in_flight += 1
        return True

    def _release(self, claimed: Claimed) -> None:
        """Its send is over: its shares free at once, not when the attempt is recorded, so the
        next claim for a receiver or an application overlaps the previous batch's record."""
        if self._shares.release(claimed):
            self._more_due = True  # it was left out of claims: look again

    async def _claim_loop(self) -> None:
        while not self._stopping.is_set():
            await self._claim_wakeup.wait()
            self._claim_wakeup.clear()
            while not self._stopping.is_set() and (self._nudged or self._more_due):
                room = self._shares.claim_size(self._limit - self._in_flight)
                if room <= 0 or (room < self._least_claim and self._in_flight > 0):
                    break  # wait until a claim can be a batch: the database work is per claim
                if not await self._claim_once(room) and not self._nudged:
                    break

    async def _claim_once(self, room: int) -> bool:
        """Claim up to ``room`` deliveries and start sending them; False when none came."""
        nudged = list(self._nudged.items())[:room]
        for delivery_id, _ in nudged:
            del self._nudged[delivery_id]
        request_ids = {delivery_id: request_id for delivery_id, request_id in nudged if request_id is not None}
        self._more_due = False
        admitted: list[Claimed] = []
        traced = tracing.enabled()
        started = tracing.timestamp_ns()
        # Taken now, claimed or not: a nudge that finds its delivery gone or held leaves nothing behind.
        dispatched = {d: t for d, _ in nudged if (t := self._dispatched.pop(d, None)) is not None} if traced else {}

        def admit(claimed: Claimed) -> bool:
            if self._admit(claimed):
                admitted.append(claimed)
                return True
            return False

        try:
            claimed, more_due = await claim(
                self._context,
                [delivery_id for delivery_id, _ in nudged],
                room,
                exclude_endpoints=self._shares.saturated_endpoints(),
                exclude_apps=self._shares.saturated_applications(),
                admit=admit,
                with_traceparent=traced,
            )
        except Exception as error:
            # The nudged deliveries stay due in the database; a later claim finds them.
            pause = self._claim_outage.failed(error, expected=database_unavailable(error))
            for item in admitted:
                self._release(item)
            self._in_flight -= len(admitted)
            self._more_due = True
            self._update_room()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)
            return False
        self._claim_outage.recovered()
        self._more_due = self._more_due or more_due
        self._update_room()
        claim_spans = self._claim_spans(claimed, dispatched, started) if traced else {}
        for item in claimed:
            send = asyncio.create_task(
                self._deliver(item, request_ids.get(item.delivery_id), claim_spans.get(item.delivery_id))
            )
            self._sends.add(send)
            send.add_done_callback(self._sends.discard)
        return bool(claimed)

    def _claim_spans(self, claimed: Sequence[Claimed], dispatched: Mapping[str, str], started: int) -> dict[str, str]:
        """Each claimed delivery's claim span (its share of the claim's transaction), a child of
        the span that dispatched it, or for a delivery found due (a retry, a sweep's nudge) of
        its message's stored one; ``{delivery id: claim span's traceparent}``."""
        ended = tracing.timestamp_ns()
        spans: dict[str, str] = {}
        for item in claimed:
            span = tracing.past_span(
                "hookpost.claim",
                dispatched.get(item.delivery_id) or item.traceparent,
                started,
                ended,
                {"hookpost.delivery_id": item.delivery_id, "hookpost.endpoint_id": item.endpoint_id},
            )
            if span is not None:
                spans[item.delivery_id] = span
        return spans

    async def _deliver(self, claimed: Claimed, request_id: str | None, claim_span: str | None = None) -> None:
        if claim_span is None:  # tracing off
            result = await send_one(self._context, claimed, request_id, stopping=self._stopping.is_set)
        else:
            result = await self._traced_send(claimed, request_id, claim_span)
        self._release(claimed)
        if self._more_due:
            self._claim_wakeup.set()
        self._finished.append((claimed, result))
        self._record_wakeup.set()
        if len(self._finished) >= self._batch:
            self._record_batch_full.set()

    async def _traced_send(self, claimed: Claimed, request_id: str | None, claim_span: str) -> AttemptResult | None:
        """``send_one`` in a send span (current, so its log lines carry the trace's ids)."""
        attributes = {"hookpost.delivery_id": claimed.delivery_id, "hookpost.app_id": claimed.app_id}
        with tracing.span("hookpost.send", parent=claim_span, attributes=attributes) as span:
            result = await send_one(self._context, claimed, request_id, stopping=self._stopping.is_set)
            if span is not None:
                self._sent_spans[claimed.delivery_id] = span.traceparent
                if result is None:
                    span.set("hookpost.postponed", True)
                else:
                    span.set("http.response.status_code", result.status_code)
                    if not result.succeeded:
                        span.failed(result.error or f"status {result.status_code}")
        return result

    async def _batch_ready(self, timeout: float) -> None:  # noqa: ASYNC109 - a pause, not a deadline
        """Let more sends finish (up to ``timeout``) so one transaction records many."""
        self._record_batch_full.clear()
        if len(self._finished) >= self._batch or self._in_flight == len(self._finished):
            return  # full already, or nothing else is sending
        with suppress(TimeoutError):
            await asyncio.wait_for(self._record_batch_full.wait(), timeout)

    async def _record_loop(self) -> None:
        while not (self._stopping.is_set() and self._in_flight == 0):
            await self._record_wakeup.wait()
            self._record_wakeup.clear()
            if not self._finished:
                continue
            if len(self._finished) < self._batch and not self._stopping.is_set():
                await self._batch_ready(RECORD_WINDOW)
            # Everything that finished while the previous record ran: one transaction.
            finished, self._finished = self._finished, []
            sent = [(claimed, result) for claimed, result in finished if result is not None]
            postponed = [claimed for claimed, result in finished if result is None]
            started = tracing.timestamp_ns()
            try:
                recorded = await record(self._context, sent, postponed)
            except Exception as error:  # the database is unreachable (record's only raise): nothing stored
                # Kept, and recorded once the database is back: no attempt is made twice for
                # want of its record (if the worker stops first, the leases run out instead).
                self._finished = finished + self._finished
                self._record_wakeup.set()
                await asyncio.sleep(self._record_outage.failed(error, expected=database_unavailable(error)))
                continue
            self._record_outage.recovered()
            if self._sent_spans:
                self._record_spans(finished, started)
            for event in recorded:
                self._context.events.publish(event)
            if self._on_sent is not None:
                try:
                    self._on_sent(sent_attempts(sent))
                except Exception:
                    logger.exception("counting %d attempts failed", len(sent))
            self._in_flight -= len(finished)
            self._update_room()
            self._claim_wakeup.set()

    def _record_spans(self, finished: Sequence[tuple[Claimed, AttemptResult | None]], started: int) -> None:
        """Each recorded delivery's record span (its share of the batch's transaction), a child of its send span."""
        ended = tracing.timestamp_ns()
        for claimed, result in finished:
            parent = self._sent_spans.pop(claimed.delivery_id, None)
            if parent is not None:
                attributes: dict[str, str | bool] = {
                    "hookpost.delivery_id": claimed.delivery_id,
                    "hookpost.postponed": result is None,
                }
                tracing.past_span("hookpost.record", parent, started, ended, attributes)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's where it is installed (with uvicorn[standard]): its sockets and callbacks cost
    less CPU per delivery than asyncio's own loop."""
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class EngineThread:
    """An event loop on a daemon thread of its own, running a ``DeliveryEngine``.

    Any thread may nudge the engine or run a coroutine on its loop (other periodic tasks
    share the loop, its database pool and its HTTP client).
    """

    def __init__(
        self, make_engine: Callable[[], Awaitable[DeliveryEngine]], on_close: Callable[[], Awaitable[None]]
    ) -> None:
        self._loop = new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hookpost-engine", daemon=True)
        self._thread.start()
        self._on_close = on_close
        self.engine: DeliveryEngine = self.run(self._start(make_engine))

    async def _start(self, make_engine: Callable[[], Awaitable[DeliveryEngine]]) -> DeliveryEngine:
        engine = await make_engine()
        engine.start()
        return engine

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the engine's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def nudge(
        self,
        delivery_ids: Sequence[str],
        request_ids: Mapping[str, str] | None = None,
        traceparents: Mapping[str, str] | None = None,
    ) -> None:
        self._loop.call_soon_threadsafe(
            self.engine.nudge, list(delivery_ids), dict(request_ids or {}), dict(traceparents or {})
        )

    def wait_for_room(self, timeout: float) -> bool:
        """Block the calling thread until the engine has room; False at the timeout."""
        future = asyncio.run_coroutine_threadsafe(self.engine.wait_for_room(), self._loop)
        try:
            future.result(timeout)
        except TimeoutError:
            future.cancel()
            return False
        return True

    def close(self, timeout: float) -> None:
        """Stop the engine (sends in flight finish and are recorded), then the loop."""

        async def _close() -> None:
            try:
                await self.engine.stop()
            finally:
                await self._on_close()

        try:
            self.run(_close(), timeout)
        except Exception:
            logger.exception("the delivery engine did not stop cleanly within %.0f s", timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()
