"""Publishes delivery tasks from the API without blocking its event loop.

Publishing to the broker is blocking socket I/O, so it runs in a worker thread, in
batches: every delivery id that arrived since the previous publish goes out in the next
task. Publishes are paced (at most one per ``interval``): a Celery pool process runs one
task at a time, so under load many one-delivery tasks would cap delivery at a few hundred
per second, where a task of many deliveries sends them all at once. A message that finds
the dispatcher idle is published at once. If a publish fails (the broker is down),
nothing is lost: the deliveries are already in the database. ``on_unpublished`` marks
them unqueued, so the scheduler queues them at its first tick that reaches the broker
(without it, once their ``queued_until`` passes); the failure is logged once, not per
batch, and its end too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import TYPE_CHECKING

from hookpost.delivery.celery_app import SEND_DELIVERIES
from hookpost.kit.outage import Outage
from hookpost.observability import tracing
from hookpost.observability.request_id import current_request_id, request_ids_header

if TYPE_CHECKING:
    from celery import Celery

    from hookpost.observability.otel import SpanHandle

logger = logging.getLogger(__name__)

Unpublished = Callable[[list[str]], Awaitable[None]]


class Dispatcher:
    def __init__(
        self,
        make_celery: Callable[[], Celery],
        batch_size: int,
        interval: float,
        on_unpublished: Unpublished | None = None,
    ) -> None:
        self._make_celery = make_celery
        self._celery: Celery | None = None  # made by the first publish, in the dispatcher's thread
        self._on_unpublished = on_unpublished
        self._publish_outage = Outage(logger, "publishing deliveries to the broker")
        self._give_back_outage = Outage(logger, "marking unpublished deliveries for the scheduler")
        self._batch_size = batch_size
        self._interval = interval
        self._last_publish = float("-inf")
        self._pending: list[str] = []
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # One thread of our own: publishes stay in order and cost one hand-off each, without
        # the per-call machinery (capacity limiter, cancel scope) of a shared thread pool.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hookpost-dispatcher")
        # The id of the API request that made each pending delivery, for the worker's logs.
        self._request_ids: dict[str, str] = {}
        # Tracing on: the span each pending delivery was submitted under (its message's commit).
        self._traceparents: dict[str, str] = {}

    def submit(self, delivery_ids: list[str]) -> None:
        if not delivery_ids:
            return
        request_id = current_request_id()
        if request_id is not None:
            for delivery_id in delivery_ids:
                self._request_ids[delivery_id] = request_id
        traceparent = tracing.current_traceparent()
        if traceparent is not None:
            for delivery_id in delivery_ids:
                self._traceparents[delivery_id] = traceparent
        self._pending.extend(delivery_ids)
        self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hookpost-dispatcher")

    async def stop(self) -> None:
        """Publish what is waiting, then stop."""
        # The task is asked to finish, never cancelled: a cancel could catch it with a batch
        # taken off the list and its publish not yet started, and that batch would be dropped.
        self._stopping.set()
        self._wakeup.set()
        if self._task is not None:
            await self._task
        await self._flush()  # in case the task never ran
        self._thread.shutdown(wait=True)
        if self._celery is not None:
            self._celery.close()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not (self._stopping.is_set() and not self._pending):
            await self._wakeup.wait()
            pause = self._last_publish + self._interval - loop.time()
            if pause > 0:
                # Pacing: what arrives meanwhile joins this batch. A stop cuts it short.
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), pause)
            self._wakeup.clear()
            self._last_publish = loop.time()
            await self._flush()

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch = self._pending[: self._batch_size]
            del self._pending[: self._batch_size]
            request_ids = {d: r for d in batch if (r := self._request_ids.pop(d, None)) is not None}
            parents = {d: t for d in batch if (t := self._traceparents.pop(d, None)) is not None}
            spans = _dispatch_spans(parents) if parents else []
            traceparents = {d: span.traceparent for span, deliveries in spans for d in deliveries}
            try:
                await loop.run_in_executor(self._thread, self._publish, batch, request_ids, traceparents)
            except Exception as error:
                for span, _ in spans:
                    span.failed(f"not published: {type(error).__name__}")
                    span.end()
                self._publish_outage.failed(error, expected=_broker_unavailable(error))
                await self._give_back(batch)
            else:
                for span, _ in spans:
                    span.end()
                self._publish_outage.recovered()

    async def _give_back(self, delivery_ids: list[str]) -> None:
        if self._on_unpublished is None:
            return
        try:
            await self._on_unpublished(delivery_ids)
        except Exception as error:  # then they wait for their queued_until to pass
            self._give_back_outage.failed(error)
        else:
            self._give_back_outage.recovered()

    def _publish(
        self,
        delivery_ids: list[str],
        request_ids: Mapping[str, str] | None = None,
        traceparents: Mapping[str, str] | None = None,
    ) -> None:
        if self._celery is None:
            self._celery = self._make_celery()
        headers = request_ids_header(request_ids or {})
        if traceparents:
            headers = {**(headers or {}), tracing.TRACEPARENTS_HEADER: dict(traceparents)}
            # The Celery instrumentation's publish span under the first of them.
            with tracing.attached(next(iter(traceparents.values()))):
                self._celery.send_task(SEND_DELIVERIES, args=[delivery_ids], headers=headers)
            return
        self._celery.send_task(SEND_DELIVERIES, args=[delivery_ids], headers=headers)


def _broker_unavailable(error: BaseException) -> bool:
    from kombu.exceptions import OperationalError  # noqa: PLC0415 - loaded with Celery by the failed publish

    return isinstance(error, OperationalError)


def _dispatch_spans(parents: Mapping[str, str]) -> list[tuple[SpanHandle, list[str]]]:
    """One dispatch span per message (its deliveries were submitted under the same commit
    span), a child of that span, with the deliveries it publishes."""
    by_parent: dict[str, list[str]] = {}
    for delivery_id, parent in parents.items():
        by_parent.setdefault(parent, []).append(delivery_id)
    spans: list[tuple[SpanHandle, list[str]]] = []
    for parent, deliveries in by_parent.items():
        span = tracing.start_span("hookpost.dispatch", parent, {"hookpost.deliveries": len(deliveries)})
        if span is not None:
            spans.append((span, deliveries))
    return spans
