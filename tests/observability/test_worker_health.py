"""``hookpost worker-health`` as a liveness probe against a real ``hookpost worker``: alive
while it runs, dead once it hangs (SIGSTOP) or stops, alive again when it resumes."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
import redis

from hookpost.observability import heartbeat
from tests.observability.commands import Command, base_env, hookpost_command, hookpost_run
from tests.support.eventually import eventually
from tests.support.services import REDIS_URL, require

INTERVAL = "0.5"  # HOOKPOST_WORKER_HEARTBEAT_INTERVAL for the test


def probe(env: dict[str, str], max_age: float) -> subprocess.CompletedProcess[str]:
    return hookpost_run("worker-health", "--max-age", str(max_age), env=env, timeout=60)


def wait_for_probe(env: dict[str, str], worker: Command | None, *, alive: bool, max_age: float) -> str:
    """Poll the heartbeat the way the command reads it (a new interpreter per poll would take
    seconds on a busy machine), then ask the command itself once; return what it said."""
    heartbeat_file = heartbeat.heartbeat_file(Path(env["HOOKPOST_DATA_DIR"]), heartbeat.default_node_name())

    def reads_as_wanted() -> bool:
        if worker is not None and alive:
            worker.assert_running()
        return heartbeat.check(heartbeat_file, max_age).alive == alive

    eventually(reads_as_wanted, f"the heartbeat to read alive={alive}", timeout=90)
    answer = probe(env, max_age)
    assert (answer.returncode == 0) == alive, answer
    return answer.stdout + answer.stderr


@pytest.fixture(params=["embedded", "redis"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    settings = {"HOOKPOST_WORKER_HEARTBEAT_INTERVAL": INTERVAL}
    if request.param == "redis":
        url = require("Redis", REDIS_URL)
        redis.Redis.from_url(url).flushdb()
        settings["HOOKPOST_BROKER_URL"] = url
    env = base_env(tmp_path / "data", **settings)
    assert hookpost_run("migrate", env=env).returncode == 0
    return env


def test_worker_health_follows_the_worker(env: dict[str, str], tmp_path: Path) -> None:
    before = probe(env, max_age=60)
    assert before.returncode == 1
    assert "not running" in before.stderr

    with hookpost_command("worker", "--concurrency", "1", env=env, log_dir=tmp_path) as worker:
        assert "alive" in wait_for_probe(env, worker, alive=True, max_age=5)

        worker.signal(signal.SIGSTOP)  # hung: the process is there, its loop does not run
        try:
            assert "stuck or gone" in wait_for_probe(env, worker, alive=False, max_age=2)
        finally:
            worker.signal(signal.SIGCONT)
        wait_for_probe(env, worker, alive=True, max_age=2)

        assert worker.stop() == 0, worker.output()[-3000:]

    after = probe(env, max_age=60)
    assert after.returncode == 1
    assert "not running" in after.stderr  # a clean stop removes the heartbeat at once
