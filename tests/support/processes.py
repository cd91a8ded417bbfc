"""Real Hookpost processes for tests: a Celery worker (with its beat scheduler) and an API
server, each a subprocess configured through the environment, as in production."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from pydantic import SecretStr

from hookpost.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process load exactly these settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HOOKPOST_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, list):
            text = ",".join(str(item) for item in value)
        elif isinstance(value, SecretStr):
            text = value.get_secret_value()
        else:
            text = str(value)
        env[f"HOOKPOST_{name.upper()}"] = text
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM the main process only, as a process manager does (a whole-group SIGTERM
    breaks Celery's warm shutdown); then clear out anything left in its group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL):
        sys.stderr.write(f"--- {log.name} (exit {process.returncode}) ---\n{log.read_text()[-4000:]}\n")


@contextmanager
def running(
    args: list[str], settings: Settings, name: str, more_env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    log = settings.data_dir / f"{name}.log"
    env = {**settings_env(settings), **(more_env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        _stop(process, log)


@contextmanager
def celery_worker(settings: Settings, concurrency: int = 2) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker, with the beat scheduler embedded (``-B``) so due retries get queued."""
    args = [
        sys.executable, "-m", "celery", "-A", "hookpost.delivery.celery_app:celery_app", "worker",
        "--loglevel=INFO", f"--concurrency={concurrency}", "--without-mingle", "--without-gossip",
        "-B", "-s", str(settings.data_dir / "celerybeat-schedule"),
    ]  # fmt: skip
    with running(args, settings, "worker") as process:
        yield process


def wait_until_healthy(base_url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"API process exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/api/v1/health", timeout=1).status_code == 204:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling interval, bounded by the deadline
    raise AssertionError(f"API at {base_url} not healthy within {timeout}s")


@contextmanager
def api_server(settings: Settings) -> Iterator[str]:
    """The app under Uvicorn on a free loopback port; yields its base URL once healthy."""
    port = free_port()
    args = [
        sys.executable, "-m", "uvicorn", "--factory", "hookpost.app:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    with running(args, settings, "api") as process:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_healthy(base_url, process)
        yield base_url
