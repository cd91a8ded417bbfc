"""Gunicorn settings for the Hookpost API: ``gunicorn -c python:hookpost.process.gunicorn_conf``.

``hookpost api`` and ``hookpost serve`` load this module; their flags, and anything in
``GUNICORN_CMD_ARGS``, override it (Gunicorn's own precedence). Read from the environment:

=================================  =====================================================
``WEB_CONCURRENCY``                worker processes (default 2)
``HOOKPOST_BIND``                  comma-separated addresses: ``0.0.0.0:8000``,
                                   ``unix:/run/hookpost.sock`` (default 127.0.0.1:8000)
``HOOKPOST_WEB_TIMEOUT``           seconds a stuck worker lives before it is replaced (30)
``HOOKPOST_WEB_GRACEFUL_TIMEOUT``  seconds in-flight requests get at shutdown (20)
``HOOKPOST_WEB_KEEPALIVE``         idle keep-alive seconds; keep it above the idle timeout
                                   of any load balancer in front (default 5)
``HOOKPOST_WEB_MAX_REQUESTS``      recycle a worker after this many requests, plus up to
                                   10% jitter so they do not all restart at once; 0 never
                                   (default 10000)
``FORWARDED_ALLOW_IPS``            proxies whose X-Forwarded-* headers are trusted
                                   (default 127.0.0.1,::1)
``HOOKPOST_ACCESS_LOG``            ``0`` turns the per-request log off (default on)
``HOOKPOST_LOG_FORMAT``            ``json`` writes Gunicorn's own lines as JSON too
``PROMETHEUS_MULTIPROC_DIR``       where the workers' metrics meet (``hookpost api`` sets it;
                                   when unset, ``<data dir>/metrics/api``, emptied at start)
=================================  =====================================================
"""

from __future__ import annotations

import os


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def _env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    return raw not in {"0", "false", "no", "off"}


wsgi_app = "hookpost.app:create_app()"
# uvicorn-worker's UvicornWorker (the maintained package; uvicorn.workers is deprecated) on
# uvloop and httptools, with one fix: Uvicorn's graceful shutdown (SIGTERM, a SIGHUP reload,
# max_requests) closes idle keep-alive connections at once, resetting a request the client
# had just sent on one; under load about one request failed per reload. WebWorker keeps such
# a connection until its keep-alive timeout and answers what arrives with Connection: close
# (hookpost/process/web_worker.py; tests/process/test_gunicorn_faults.py).
worker_class = "hookpost.process.web_worker.WebWorker"
workers = _env_int("WEB_CONCURRENCY", 2)
bind = [address.strip() for address in os.environ.get("HOOKPOST_BIND", "127.0.0.1:8000").split(",") if address.strip()]
timeout = _env_int("HOOKPOST_WEB_TIMEOUT", 30)
graceful_timeout = _env_int("HOOKPOST_WEB_GRACEFUL_TIMEOUT", 20)
keepalive = _env_int("HOOKPOST_WEB_KEEPALIVE", 5)
max_requests = _env_int("HOOKPOST_WEB_MAX_REQUESTS", 10_000)
max_requests_jitter = max_requests // 10
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = "-" if _env_flag("HOOKPOST_ACCESS_LOG", True) else None
errorlog = "-"
proc_name = "hookpost-api"
# Gunicorn 25.1+ otherwise opens a control socket at $XDG_RUNTIME_DIR/gunicorn.ctl or
# ~/.gunicorn/gunicorn.ctl, shared by (and unlinked by) every Gunicorn of the user; Hookpost
# keeps its files in its data directory, and needs no runtime control.
control_socket_disable = True
# JSON lines for the master's and the workers' logs when HOOKPOST_LOG_FORMAT=json.
logger_class = "hookpost.observability.gunicorn_logging.GunicornLogger"


def on_starting(server: object) -> None:
    """Before any worker starts: give /metrics a folder to add the workers' values up in."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    from hookpost.observability import multiprocess  # noqa: PLC0415 - only in the master
    from hookpost.settings import get_settings  # noqa: PLC0415

    folder = multiprocess.prepare(multiprocess.metrics_dir(get_settings().data_dir, "api"))
    os.environ[multiprocess.VARIABLE] = str(folder)


def child_exit(server: object, worker: object) -> None:
    """A worker is gone: drop its live gauges from /metrics and fold its counts into the
    archive files, so they stay counted without a file per pid ever started."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        from pathlib import Path  # noqa: PLC0415

        from prometheus_client import multiprocess  # noqa: PLC0415 - never before on_starting

        from hookpost.observability.multiprocess import fold_dead_process  # noqa: PLC0415

        pid: int = worker.pid  # type: ignore[attr-defined]
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
        fold_dead_process(Path(folder), pid)
