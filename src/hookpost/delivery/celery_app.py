"""The Celery application: broker settings, reliability settings and the periodic schedule.

The task names are plain constants: a process that only names a task (the API's dispatcher)
imports no Celery by importing this module; ``create_celery`` loads it when an app is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hookpost.settings import Settings, get_settings

if TYPE_CHECKING:
    from celery import Celery

SEND_DELIVERIES = "hookpost.send_deliveries"
ENQUEUE_DUE = "hookpost.enqueue_due"
RUN_BACKGROUND_TASKS = "hookpost.run_background_tasks"
PURGE_EXPIRED = "hookpost.purge_expired"
DELIVER_FIFO = "hookpost.deliver_fifo"
QUEUE = "hookpost"


def _register_transports() -> None:
    from kombu.transport import TRANSPORT_ALIASES  # noqa: PLC0415 - with Celery, when an app is made

    # The embedded default's broker URL is filesystem://; it runs on Hookpost's safer variant.
    TRANSPORT_ALIASES["hookpost-filesystem"] = "hookpost.delivery.embedded_broker:Transport"
    # Redis URLs keep their scheme (rediss:// still means TLS) and run on a variant that
    # survives Redis going away while a worker waits on it (redis_broker.py).
    TRANSPORT_ALIASES["redis"] = TRANSPORT_ALIASES["rediss"] = "hookpost.delivery.redis_broker:Transport"


def prepare_broker(settings: Settings) -> None:
    """Make the embedded broker's folders (nothing for a broker that is a server): what a
    process publishing later, or a readiness check meanwhile, finds there, without Celery."""
    if settings.broker_url.startswith("filesystem://"):
        _filesystem_broker_options(settings)


def _filesystem_broker_options(settings: Settings) -> dict[str, Any]:
    queue_dir = settings.broker_dir / "queue"
    processed_dir = settings.broker_dir / "processed"
    control_dir = settings.broker_dir / "control"
    for folder in (queue_dir, processed_dir, control_dir):
        folder.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(queue_dir),
        "data_folder_out": str(queue_dir),
        # Consumers claim a message by renaming it into this folder: a rename on the same
        # filesystem is atomic, so two workers never take the same message.
        "processed_folder": str(processed_dir),
        "control_folder": str(control_dir),
        "polling_interval": 0.05,
    }


def create_celery(settings: Settings, *, with_tasks: bool = True) -> Celery:
    """The app; ``with_tasks=False`` for a process that only publishes them (the scheduler)."""
    from celery import Celery  # noqa: PLC0415 - see the module's docstring

    _register_transports()
    broker_url = settings.broker_url
    transport_options: dict[str, Any] = {}
    if broker_url.startswith("filesystem://"):
        broker_url = broker_url.replace("filesystem://", "hookpost-filesystem://", 1)
        transport_options = _filesystem_broker_options(settings)
    app = Celery("hookpost", broker=broker_url, include=["hookpost.delivery.tasks"] if with_tasks else [])
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        # Reconnect for as long as the broker is down (spaced up to 30 s apart), rather than
        # exit after Celery's default 100 tries (about 47 minutes): the database holds the
        # work, and a worker that outlives the outage resumes by itself (README: Reliability).
        broker_connection_max_retries=None,
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # Deliveries are idempotent (a lease in the database guards each send), so a task
        # is acknowledged only once it has run: a worker killed mid-task leaves it queued.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # Take one task at a time: a worker must not sit on work another could do.
        worker_prefetch_multiplier=1,
        # Well under Redis' one-hour visibility timeout, so a task is never re-delivered
        # while it still runs.
        task_time_limit=300,
        task_soft_time_limit=240,
        worker_hijack_root_logger=False,
        # A new pool process opens its database connection before it reports in (tasks.py,
        # bounded at 1 s); on a busy machine the default 4 s to report in is too tight.
        worker_proc_alive_timeout=10.0,
        # For `celery worker -B` (development, tests); `hookpost scheduler` does the same
        # work without Celery beat (delivery/scheduler.py).
        beat_schedule={
            "enqueue-due-deliveries": {"task": ENQUEUE_DUE, "schedule": settings.scheduler_interval},
            "run-background-tasks": {"task": RUN_BACKGROUND_TASKS, "schedule": settings.scheduler_interval},
            "purge-expired-content": {"task": PURGE_EXPIRED, "schedule": 3600.0},
            "deliver-fifo-destinations": {"task": DELIVER_FIFO, "schedule": settings.scheduler_interval},
        },
    )
    # Remote control (`celery inspect`, `celery control`): nothing of Hookpost's uses it
    # (`hookpost worker-health` reads a heartbeat file). Off on the filesystem transport (no
    # broadcast worth using) and on RabbitMQ, where its queue is exclusive to the connection
    # that declared it: a worker whose link dropped for less than the broker takes to notice
    # reconnected, found that queue still held by its old connection (RESOURCE_LOCKED) and
    # exited (tests/deploy/test_multi_host.py, the RabbitMQ run). On on Redis: a worker with
    # neither it nor gossip nor mingle never noticed a restarted Redis and stopped consuming
    # (tests/reliability/test_delivery_outages.py, the broker's outage).
    app.conf.worker_enable_remote_control = settings.broker_url.startswith("redis")
    return app


_celery_app: Celery | None = None


def __getattr__(name: str) -> Celery:
    """``celery_app``, the worker's app (``celery -A hookpost.delivery.celery_app:celery_app``),
    built on first use: a process that only needs a task's name (the API's dispatcher) builds
    no Celery app and makes no broker folders by importing this module."""
    global _celery_app  # noqa: PLW0603 - one app per process, built once
    if name != "celery_app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _celery_app is None:
        _celery_app = create_celery(get_settings())
    return _celery_app
