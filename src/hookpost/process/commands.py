"""The command lines of Hookpost's processes, all run by the interpreter running us.

``sys.executable -m ...`` rather than a script on PATH: the children then use exactly
this virtual environment, whichever way ``hookpost`` itself was started.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
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
