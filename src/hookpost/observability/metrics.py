"""Hookpost's Prometheus metrics, and how a scrape renders them.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``hookpost serve``, ``hookpost api``, a worker that
serves its own metrics) every process writes its values there and a scrape adds them up
across processes; without it (one Uvicorn process per container) the process's own
registry is the truth. The delivery backlog gauges are read from the database at scrape
time, so they are right whichever process answers the scrape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.kit.time import as_utc, utcnow
from hookpost.observability import multiprocess
from hookpost.storage.models import Delivery, Endpoint, pending

HTTP_REQUESTS = Counter(
    "hookpost_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "hookpost_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
MESSAGES_ACCEPTED = Counter(
    "hookpost_messages_accepted",
    "Messages stored and answered 202 (an idempotent repeat is not counted again).",
)
DELIVERY_ATTEMPTS = Counter(
    "hookpost_delivery_attempts",
    "Delivery attempts made by the workers, by outcome (success: a 2xx answer) and class "
    "(2xx, 3xx, 4xx, 5xx, timeout, connect, refused, other).",
    ["outcome", "class"],
)
DELIVERY_LATENCY = Histogram(
    "hookpost_delivery_latency_seconds",
    "From a message being accepted to its successful delivery to an endpoint, retries included "
    "(manual resends are not counted).",
    # Retries stretch this from milliseconds to days.
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 7200, 21600, 86400, 259200),
)
# Summed over the live processes: a dead pool process's values leave with it (worker.py).
WORKER_IN_FLIGHT = Gauge(
    "hookpost_worker_in_flight",
    "Deliveries the worker processes hold (claimed, not yet recorded).",
    multiprocess_mode="livesum",
)
WORKER_IN_FLIGHT_LIMIT = Gauge(
    "hookpost_worker_in_flight_limit",
    "How many deliveries the worker processes may hold at most (HOOKPOST_WORKER_IN_FLIGHT each).",
    multiprocess_mode="livesum",
)

# Each class's counter child, looked up once: ``labels()`` takes a lock and builds a key on every call.
_attempts: dict[str, Counter] = {}


def record_attempt(outcome_class: str) -> None:
    """Count one attempt of this class (``AttemptResult.outcome_class``)."""
    counter = _attempts.get(outcome_class)
    if counter is None:
        outcome = "success" if outcome_class == "2xx" else "failure"
        counter = _attempts[outcome_class] = DELIVERY_ATTEMPTS.labels(outcome=outcome, **{"class": outcome_class})
    counter.inc()


def observe_delivery_latency(accepted_at: Iterable[datetime]) -> None:
    """Observe accepted -> delivered for messages, accepted at these times, delivered just now."""
    now = utcnow()
    for accepted in accepted_at:
        DELIVERY_LATENCY.observe(max(0.0, (now - as_utc(accepted)).total_seconds()))


@dataclass(frozen=True)
class Backlog:
    due: int
    oldest_due_at: datetime | None

    def oldest_age_seconds(self, now: datetime) -> float:
        if self.oldest_due_at is None:
            return 0.0
        return max(0.0, (now - as_utc(self.oldest_due_at)).total_seconds())


async def read_backlog(session: AsyncSession) -> Backlog:
    """Deliveries due now (pending, their time come, endpoint enabled) and the oldest one's due time."""
    row = (
        await session.execute(
            select(func.count(), func.min(Delivery.next_attempt_at))
            .select_from(Delivery)
            .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
            .where(
                pending(),  # the due set's partial index
                Delivery.next_attempt_at <= utcnow(),
                Endpoint.disabled.is_(False),
            )
        )
    ).one()
    return Backlog(due=int(row[0] or 0), oldest_due_at=row[1])


class _BacklogCollector(Collector):
    def __init__(self, backlog: Backlog, now: datetime) -> None:
        self._backlog = backlog
        self._now = now

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "hookpost_due_deliveries",
            "Deliveries whose attempt is due now and not yet made (read from the database).",
            value=self._backlog.due,
        )
        yield GaugeMetricFamily(
            "hookpost_oldest_due_delivery_age_seconds",
            "How long the oldest due delivery has been waiting past its due time; 0 when none "
            "(read from the database).",
            value=self._backlog.oldest_age_seconds(self._now),
        )


def render_process_metrics() -> bytes:
    """Counters and histograms: every process's (multiprocess mode) or this one's."""
    path = multiprocess.folder()
    if path is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    with multiprocess.locked(path, exclusive=False):
        return generate_latest(registry)


def render_backlog(backlog: Backlog) -> bytes:
    registry = CollectorRegistry()
    registry.register(_BacklogCollector(backlog, utcnow()))
    return generate_latest(registry)
