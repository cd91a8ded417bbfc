"""The command lines of Hookpost's processes, all run by the interpreter running us.

``sys.executable -m ...`` rather than a script on PATH: the children then use exactly
this virtual environment, whichever way ``hookpost`` itself was started.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import hookpost
from hookpost.settings import Settings

GUNICORN_CONFIG = "python:hookpost.process.gunicorn_conf"
APP_FACTORY = "hookpost.app:create_app"
CELERY_APP = "hookpost.delivery.celery_app:celery_app"
SCHEDULER_MODULE = "hookpost.delivery.scheduler"
SOURCE_DIR = Path(hookpost.__file__).resolve().parent


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 literal in brackets."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def api_argv(binds: Sequence[str], workers: int | None) -> list[str]:
    """Gunicorn with Uvicorn workers; an empty ``binds`` leaves it to the config module."""
    argv = [sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONFIG]
    for address in binds:
        argv += ["--bind", address]
    if workers is not None:
        argv += ["--workers", str(workers)]
    return [*argv, f"{APP_FACTORY}()"]


def worker_argv(concurrency: int | None) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "celery",
        "--quiet",  # no banner: the log is one JSON object per line
        "--app",
        CELERY_APP,
        "worker",
        "--loglevel",
        "INFO",
        # No start-up handshakes with other workers: mingle waits a second for their answers
        # (on Redis and RabbitMQ) to sync revoked tasks, and gossip follows their events;
        # Hookpost revokes no task and watches no worker through Celery.
        "--without-mingle",
        "--without-gossip",
    ]
    if concurrency == 1:
        # One engine in Celery's own process rather than a prefork parent with one pool
        # process: half the memory (a pool process carries all its parent's pages too).
        # The thread takes tasks and hands their ids to the engine, like a pool process.
        argv += ["--pool", "threads"]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    return argv


# `hookpost serve`'s processes when neither its options nor the settings say. On the embedded
# SQLite database (one writer at a time) one API worker and a one-process worker deliver
# what two of each do and take half the memory (docs/performance.md: Embedded stack memory).
EMBEDDED_API_WORKERS = 1
EMBEDDED_WORKER_CONCURRENCY = 1
PRODUCTION_API_WORKERS = 2


@dataclass(frozen=True)
class ServeProcesses:
    api_workers: int
    worker_concurrency: int | None  # None: Celery's default, one pool process per CPU


def serve_processes(settings: Settings, workers: int | None = None, concurrency: int | None = None) -> ServeProcesses:
    """How many processes ``hookpost serve`` runs: its command line's, else the settings', else
    the default for the database (fewer on SQLite)."""
    embedded = settings.is_sqlite
    api_workers = workers or settings.serve_api_workers
    if api_workers is None:
        api_workers = EMBEDDED_API_WORKERS if embedded else PRODUCTION_API_WORKERS
    worker_concurrency = concurrency or settings.serve_worker_concurrency
    if worker_concurrency is None and embedded:
        worker_concurrency = EMBEDDED_WORKER_CONCURRENCY
    return ServeProcesses(api_workers, worker_concurrency)


def scheduler_argv() -> list[str]:
    return [sys.executable, "-m", SCHEDULER_MODULE]


def dev_argv(host: str, port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "uvicorn", "--factory", APP_FACTORY, "--reload"),
        *("--reload-dir", str(SOURCE_DIR), "--host", host, "--port", str(port)),
    ]


def child_env(settings: Settings, admin_token: str | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment plus what every process must agree on: where the data is, the token."""
    env = dict(os.environ if base is None else base)
    env["HOOKPOST_DATA_DIR"] = str(settings.data_dir)
    if admin_token is not None:
        env["HOOKPOST_ADMIN_TOKEN"] = admin_token
    return env
