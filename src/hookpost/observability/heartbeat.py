"""A worker's liveness: a file it touches every few seconds, and the check that reads it.

The worker's timer touches ``<data dir>/heartbeats/<node name>``: with Redis or RabbitMQ
that timer runs in the worker's event loop (the one that consumes tasks), so a wedged
consumer stops the heartbeat; with the filesystem broker, where Celery has no event loop
and no remote control (so ``celery inspect ping`` cannot work), it runs in the worker's
timer thread. The file goes away when the worker stops cleanly. ``hookpost worker-health``
passes when the file is younger than ``--max-age``: a Kubernetes exec liveness probe.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

FOLDER = "heartbeats"
DEFAULT_NODE_PREFIX = "celery"


def default_node_name() -> str:
    """Celery's default node name, ``celery@<host name>``."""
    return f"{DEFAULT_NODE_PREFIX}@{socket.gethostname()}"


def heartbeat_file(data_dir: Path, node_name: str) -> Path:
    return data_dir / FOLDER / node_name.replace(os.sep, "_")


def beat(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    os.utime(path)


@dataclass(frozen=True)
class Verdict:
    alive: bool
    reason: str


def check(path: Path, max_age: float, now: float | None = None) -> Verdict:
    try:
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return Verdict(False, f"no heartbeat at {path}: the worker is not running (or not yet started)")
    age = (time.time() if now is None else now) - modified
    if age > max_age:
        return Verdict(False, f"last heartbeat {age:.0f}s ago (more than {max_age:g}s): the worker is stuck or gone")
    return Verdict(True, f"worker alive, last heartbeat {max(age, 0):.1f}s ago")
