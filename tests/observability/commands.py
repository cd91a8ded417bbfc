"""Real ``hookpost`` commands (api, worker, serve, migrate) as processes on loopback for the
observability tests: each in its own process group, with its output in a log file, and
waited on by polling against a deadline, never by sleeping."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import SECRET_KEY
from tests.support.eventually import eventually

ADMIN_TOKEN = "test-admin-token-observability-0123456789"
STARTUP_DEADLINE = 90.0  # generous: CI shares two cores with everything else


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port with a socket bound but never listening: every connect is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def base_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """Our environment without HOOKPOST_* settings, plus a data dir, a token and these."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("HOOKPOST_") and key not in {"PROMETHEUS_MULTIPROC_DIR", "WEB_CONCURRENCY"}
    }
    env.update(
        HOOKPOST_DATA_DIR=str(data_dir),
        HOOKPOST_ADMIN_TOKEN=ADMIN_TOKEN,
        HOOKPOST_SECRET_KEY=SECRET_KEY,
        HOOKPOST_ALLOWED_NETWORKS="127.0.0.0/8",
        HOOKPOST_SCHEDULER_INTERVAL="0.2",
    )
    env.update(settings)
    return env


def hookpost_run(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookpost", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass
class Command:
    """A running ``hookpost`` command."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    base_url: str = ""
    _stopped: bool = field(default=False)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def non_json_lines(self) -> list[str]:
        """Lines that are not a JSON object (Celery's warning to root was several, before the
        worker made it one log line)."""
        return [line for line in self.output().splitlines() if line.strip() and not line.startswith("{")]

    def json_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def assert_running(self) -> None:
        code = self.process.poll()
        assert code is None, f"{self.name} exited with {code}:\n{self.output()[-4000:]}"

    def wait_http(self, path: str = "/healthz") -> None:
        def answers() -> bool:
            self.assert_running()
            try:
                return httpx.get(self.base_url + path, timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        eventually(answers, f"{self.name} at {self.base_url}{path}", timeout=STARTUP_DEADLINE)

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def stop(self, timeout: float = 45) -> int:
        """SIGTERM to the command alone, as a container runtime sends it; then clean up."""
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.kill()  # whatever it forked and left behind
        return self.process.returncode

    def kill(self) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@contextmanager
def hookpost_command(*args: str, env: dict[str, str], log_dir: Path, port: int | None = None) -> Iterator[Command]:
    name = args[0]
    log = log_dir / f"{name}-{len(list(log_dir.glob(f'{name}*.log')))}.log"
    argv = [sys.executable, "-m", "hookpost", *args]
    if port is not None:
        argv += ["--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    command = Command(name, process, log, f"http://127.0.0.1:{port}" if port else "")
    try:
        yield command
    finally:
        command.stop()
