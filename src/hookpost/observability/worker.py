"""What the Celery worker adds for operations: logging set up our way (shared with the
scheduler, see ``celery_logging``), the request id of each delivery, the heartbeat file,
and optionally a /metrics port.

``install(celery_app)`` is called once where the tasks are defined.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from celery import Celery, bootsteps, signals
from celery.exceptions import SecurityWarning

from hookpost.observability import celery_logging, heartbeat, multiprocess, tracing
from hookpost.observability.request_id import REQUEST_IDS_HEADER, acceptable
from hookpost.settings import get_settings

if TYPE_CHECKING:
    from hookpost.delivery.record import Sent

logger = logging.getLogger(__name__)


def _task_header(task_request: Any, name: str) -> dict[Any, Any]:
    raw = getattr(task_request, name, None)
    if raw is None and isinstance(getattr(task_request, "headers", None), dict):
        raw = task_request.headers.get(name)
    return raw if isinstance(raw, dict) else {}


def task_request_ids(task_request: Any) -> dict[str, str]:
    """The ``{delivery id: request id}`` the publishing API request attached, if any."""
    raw = _task_header(task_request, REQUEST_IDS_HEADER)
    return {str(key): value for key, value in raw.items() if isinstance(value, str) and acceptable(value)}


def task_traceparents(task_request: Any) -> dict[str, str]:
    """The ``{delivery id: dispatch span's traceparent}`` the API attached (tracing on), if any."""
    if not tracing.enabled():
        return {}
    raw = _task_header(task_request, tracing.TRACEPARENTS_HEADER)
    return {str(key): value for key, value in raw.items() if isinstance(value, str) and len(value) == 55}


def observe_sent(sent: Sequence[Sent]) -> None:
    """Count a task's attempts, and the accepted -> delivered latency of its scheduled successes."""
    # Here, not at the top: the metrics module loads SQLAlchemy and the models, which a
    # prefork parent (it imports this module, and sends nothing) would otherwise carry.
    from hookpost.observability.metrics import observe_delivery_latency, record_attempt  # noqa: PLC0415

    for attempt in sent:
        record_attempt(attempt.result.outcome_class)
    observe_delivery_latency(attempt.accepted_at for attempt in sent if attempt.result.succeeded and attempt.scheduled)


def in_flight_gauge(limit: int) -> Callable[[int], None]:
    """Export this process's in-flight limit; the setter of its count of deliveries held."""
    from hookpost.observability.metrics import WORKER_IN_FLIGHT, WORKER_IN_FLIGHT_LIMIT  # noqa: PLC0415

    WORKER_IN_FLIGHT_LIMIT.set(limit)
    return WORKER_IN_FLIGHT.set


class Heartbeat(bootsteps.StartStopStep):  # type: ignore[misc]
    """Touches the worker's heartbeat file from the worker's timer; removes it on stop."""

    requires: ClassVar[set[str]] = {"celery.worker.components:Timer"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._path: Path | None = None
        self._timer_entry: Any = None

    def start(self, parent: Any) -> None:
        settings = get_settings()
        self._path = heartbeat.heartbeat_file(settings.data_dir, parent.hostname)
        self._beat()
        self._timer_entry = parent.timer.call_repeatedly(settings.worker_heartbeat_interval, self._beat)

    def stop(self, parent: Any) -> None:
        if self._timer_entry is not None:
            self._timer_entry.cancel()
            self._timer_entry = None
        if self._path is not None:
            self._path.unlink(missing_ok=True)

    def terminate(self, parent: Any) -> None:
        self.stop(parent)

    def _beat(self) -> None:
        assert self._path is not None
        try:
            heartbeat.beat(self._path)
        except OSError as error:
            logger.warning("heartbeat not written to %s: %s", self._path, error)


def _start_metrics_server(**_: Any) -> None:
    bind = get_settings().worker_metrics_bind
    if not bind:
        return
    if not multiprocess.enabled():
        logger.warning("HOOKPOST_WORKER_METRICS_BIND needs %s (hookpost worker sets it)", multiprocess.VARIABLE)
        return
    from prometheus_client import CollectorRegistry, start_http_server  # noqa: PLC0415
    from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415

    host, _colon, port = bind.rpartition(":")
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(int(port), addr=host.strip("[]") or "0.0.0.0", registry=registry)  # noqa: S104
    logger.info("worker metrics on http://%s/metrics", bind)


def _forget_pool_process(**_: Any) -> None:
    if multiprocess.enabled():
        from prometheus_client import multiprocess as prometheus_multiprocess  # noqa: PLC0415

        prometheus_multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def _remove_own_metrics_dir(**_: Any) -> None:
    folder = os.environ.get(multiprocess.VARIABLE)
    if folder and Path(folder).name == f"worker-{os.getpid()}":
        shutil.rmtree(folder, ignore_errors=True)


# Celery's warning when the worker runs as root: several lines of plain text on stderr,
# whatever the log format. Its danger is a pickled message running code as root, and
# Hookpost accepts JSON only (delivery/celery_app.py), so it is replaced by one log line.
_ROOT_WARNING = "You're running the worker with superuser privileges"


def _quiet_the_root_warning(**_: Any) -> None:
    """Sent just before Celery checks the privileges (``celeryd_init``)."""
    warnings.filterwarnings("ignore", message=_ROOT_WARNING, category=SecurityWarning)


def _say_once_it_runs_as_root(**_: Any) -> None:
    if os.geteuid() == 0:
        logger.warning(
            "the worker runs as root (uid 0); tolerated since its tasks are JSON only, never pickle, "
            "but an unprivileged user is safer (the Docker image runs as uid 10001)"
        )


def install(app: Celery) -> None:
    app.steps["worker"].add(Heartbeat)
    celery_logging.install()
    signals.celeryd_init.connect(_quiet_the_root_warning, weak=False, dispatch_uid="hookpost-root-warning")
    signals.worker_ready.connect(_say_once_it_runs_as_root, weak=False, dispatch_uid="hookpost-root-notice")
    signals.worker_ready.connect(_start_metrics_server, weak=False, dispatch_uid="hookpost-metrics")
    signals.worker_process_shutdown.connect(_forget_pool_process, weak=False, dispatch_uid="hookpost-pool-exit")
    signals.worker_shutdown.connect(_remove_own_metrics_dir, weak=False, dispatch_uid="hookpost-metrics-dir")
