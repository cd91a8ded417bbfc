"""What a delivery worker's processes load: the memory target (docs/performance.md: Performance) rests on
a prefork parent that loads no delivery code and on no process loading what it never uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hookpost.process.commands import worker_argv

# What the check prints: which of these modules a fresh interpreter has loaded.
HEAVY = ["hookpost.delivery.engine", "sqlalchemy", "httpx", "aiohttp", "redis", "rich", "pygments", "cryptography"]


def loaded_after(statement: str, tmp_path: Path) -> set[str]:
    """The HEAVY modules loaded after ``statement``, on the embedded default's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKPOST_")}
    env["HOOKPOST_DATA_DIR"] = str(tmp_path / "data")
    check = f"import sys, json; {statement}; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    completed = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(completed.stdout.strip().splitlines()[-1]))


def test_a_prefork_parent_loads_no_delivery_code(tmp_path: Path) -> None:
    # What Celery's main process imports: the app and its task module, and the settings it is
    # made from (cryptography only with the first secret opened: the settings check the keys'
    # form without it).
    statement = "import hookpost.delivery.tasks; from hookpost.delivery.celery_app import celery_app; celery_app.conf"
    assert loaded_after(statement, tmp_path) == set()


def test_a_delivery_process_on_the_embedded_default_loads_neither_redis_nor_httpx_cli(tmp_path: Path) -> None:
    loaded = loaded_after("import hookpost.delivery.tasks, hookpost.delivery.runtime", tmp_path)
    assert {"hookpost.delivery.engine", "sqlalchemy", "httpx", "aiohttp", "cryptography"} <= loaded
    assert not loaded & {"redis", "rich", "pygments"}


def test_one_process_runs_the_engine_itself_at_concurrency_one() -> None:
    assert worker_argv(1)[-4:] == ["--pool", "threads", "--concurrency", "1"]
    assert "--pool" not in worker_argv(2)
    assert "--pool" not in worker_argv(None)
