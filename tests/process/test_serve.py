"""End to end: ``hookpost serve`` (and ``hookpost api``) as real processes on loopback.

Readiness is always a poll of ``GET /api/v1/health`` against a deadline; every process
started is identified by the test's unique data directory in its environment, so none
can outlive the test unnoticed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis
import standardwebhooks

from hookpost.kit.urls import redact_url
from tests.conftest import SECRET_KEY
from tests.process.proc import ProcessId, all_gone, command_line, descendants, parent_of, with_environment
from tests.support.databases import fresh_postgres_database
from tests.support.eventually import eventually
from tests.support.processes import free_port
from tests.support.receiver import Receiver
from tests.support.services import REDIS_URL, require

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

REPO = Path(__file__).resolve().parents[2]
STARTUP_DEADLINE = 120.0  # generous: a loaded CI box imports slowly; healthy returns at once
STOP_DEADLINE = 45.0
ADMIN_TOKEN = "test-admin-token-for-the-api-alone"


@dataclass
class Service:
    """A running ``hookpost`` command and where to reach it."""

    process: subprocess.Popen[bytes]
    log: Path
    base_url: str
    data_dir: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_healthy(self) -> None:
        def healthy() -> bool:
            assert self.process.poll() is None, f"exited early:\n{self.output()}"
            try:
                return httpx.get(f"{self.base_url}/api/v1/health", timeout=2).status_code == 204
            except httpx.TransportError:
                return False

        eventually(healthy, f"{self.base_url}/api/v1/health", timeout=STARTUP_DEADLINE)

    def wait_exit(self) -> int:
        try:
            return self.process.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {STOP_DEADLINE}s:\n{self.output()}") from None

    def leftovers(self) -> set[ProcessId]:
        return with_environment("HOOKPOST_DATA_DIR", str(self.data_dir))


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, Path]:
    """Empty home and working directories: every file must land in the data directory."""
    paths = {name: tmp_path / name for name in ("data", "home", "cwd")}
    for path in paths.values():
        path.mkdir()
    return paths


@pytest.fixture
def env(sandbox: dict[str, Path]) -> dict[str, str]:
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("HOOKPOST_") and key not in {"XDG_RUNTIME_DIR", "WEB_CONCURRENCY"}
    }
    clean.update(
        HOME=str(sandbox["home"]),
        HOOKPOST_DATA_DIR=str(sandbox["data"]),
        HOOKPOST_ALLOWED_NETWORKS="127.0.0.0/8",
        HOOKPOST_SCHEDULER_INTERVAL="0.2",
    )
    return clean


class StartHookpost(Protocol):
    def __call__(
        self, *args: str, port: int, extra_env: dict[str, str] | None = ..., launcher: list[str] | None = ...
    ) -> Service: ...


@pytest.fixture
def start(env: dict[str, str], sandbox: dict[str, Path]) -> Iterator[StartHookpost]:
    started: list[Service] = []

    def start_hookpost(
        *args: str, port: int, extra_env: dict[str, str] | None = None, launcher: list[str] | None = None
    ) -> Service:
        """``launcher``: run through it (``uv run``) in a session of its own, with no terminal."""
        log = sandbox["data"].parent / f"hookpost-{args[0]}.log"
        command = [*launcher, "hookpost"] if launcher else [sys.executable, "-m", "hookpost"]
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [*command, *args, "--port", str(port)],
                env={**env, **(extra_env or {})},
                cwd=sandbox["cwd"],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=launcher is not None,
            )
        service = Service(process, log, f"http://127.0.0.1:{port}", sandbox["data"])
        started.append(service)
        return service

    yield start_hookpost
    for service in started:  # a failed test must not leak a running service
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait()
        for leftover in service.leftovers():
            os.kill(leftover.pid, signal.SIGKILL)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def test_serve_delivers_a_signed_webhook_and_stops_without_orphans(
    start: StartHookpost, receiver: Receiver, sandbox: dict[str, Path]
) -> None:
    serve = start("serve", "--workers", "2", "--concurrency", "2", port=free_port())
    serve.wait_healthy()
    token = (sandbox["data"] / "admin-token").read_text().strip()
    assert token in serve.output()  # printed for the operator, with the URLs
    assert f"{serve.base_url}/docs" in serve.output()
    assert str(sandbox["data"]) in serve.output()

    deliver_a_signed_webhook(serve.base_url, token, receiver)
    tree = descendants(serve.process.pid)
    commands = [command_line(process) for process in tree]
    for part in ("gunicorn", "celery_app worker", "hookpost.delivery.scheduler"):
        assert any(part in command for command in commands), (part, commands)

    serve.process.send_signal(signal.SIGINT)

    assert_stopped_cleanly(serve, tree, sandbox)


def test_serve_on_the_embedded_default_runs_one_api_worker_and_a_one_process_worker(
    start: StartHookpost, receiver: Receiver, sandbox: dict[str, Path]
) -> None:
    """SQLite takes one writer at a time: fewer processes deliver as much in half the memory."""
    serve = start("serve", port=free_port())
    serve.wait_healthy()
    deliver_a_signed_webhook(serve.base_url, (sandbox["data"] / "admin-token").read_text().strip(), receiver)
    tree = descendants(serve.process.pid)
    commands = [command_line(process) for process in tree]

    assert len([command for command in commands if "gunicorn" in command]) == 2  # the master and one worker
    workers = [command for command in commands if "celery_app worker" in command]
    assert len(workers) == 1  # no pool processes
    assert "--pool threads --concurrency 1" in workers[0]

    serve.process.send_signal(signal.SIGINT)
    assert_stopped_cleanly(serve, tree, sandbox)


@pytest.mark.postgres
@pytest.mark.redis
def test_serve_runs_the_production_configuration_with_the_same_command(
    start: StartHookpost, receiver: Receiver, sandbox: dict[str, Path]
) -> None:
    # Its own Redis database, so it shares no queue with other tests using Redis.
    broker_url = urlunsplit(urlsplit(require("Redis", REDIS_URL))._replace(path="/14"))
    redis.Redis.from_url(broker_url).flushdb()
    with fresh_postgres_database() as database_url:
        production = {
            "HOOKPOST_DATABASE_URL": database_url,
            "HOOKPOST_BROKER_URL": broker_url,
            "HOOKPOST_SECRET_KEY": SECRET_KEY,  # required with PostgreSQL
        }
        serve = start("serve", "--workers", "1", "--concurrency", "2", port=free_port(), extra_env=production)
        serve.wait_healthy()
        assert redact_url(database_url) in serve.output()
        assert broker_url in serve.output()

        deliver_a_signed_webhook(serve.base_url, (sandbox["data"] / "admin-token").read_text().strip(), receiver)
        tree = descendants(serve.process.pid)

        serve.process.send_signal(signal.SIGTERM)

        assert_stopped_cleanly(serve, tree, sandbox)
    assert not (sandbox["data"] / "hookpost.db").exists()
    redis.Redis.from_url(broker_url).flushdb()


def test_one_sigint_under_uv_run_without_a_terminal_stops_gracefully_and_quietly(
    start: StartHookpost, sandbox: dict[str, Path]
) -> None:
    """The README's `uv run hookpost serve`, where no terminal is (a CI job, a script): a SIGINT
    to the process group reaches the supervisor, and uv forwards it a second copy. That is one
    stop, not a repeated one that kills everything; and the log says only what matters."""
    uv = shutil.which("uv")
    if uv is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("uv is not installed, and CI=true requires it")
        pytest.skip("uv is not installed")
    launcher = [uv, "run", "--no-sync", "--project", str(REPO)]
    uv_cache = {"UV_CACHE_DIR": str(sandbox["data"].parent / "uv-cache")}  # not in the sandbox's home
    serve = start(
        "serve", "--workers", "2", "--concurrency", "2", port=free_port(), extra_env=uv_cache, launcher=launcher
    )
    serve.wait_healthy()
    tree = descendants(serve.process.pid)
    eventually(
        lambda: "celery@" in serve.output() and " ready." in serve.output(), "the worker", timeout=STARTUP_DEADLINE
    )

    os.killpg(serve.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does, to the whole group

    assert_stopped_cleanly(serve, tree, sandbox)
    output = serve.output()
    assert "stop signal repeated" not in output
    assert output.count("SIGINT received") == 1
    assert "Bad file descriptor" not in output  # Gunicorn's workers closing their sockets
    assert "No hostname was supplied" not in output  # kombu, of the filesystem broker
    banner_end = output.index("Ctrl-C to stop.")
    plain = [line for line in output[banner_end:].splitlines()[1:] if line and not line.startswith("{")]
    # Celery's own word on a stop is the one line not in the log format (printed by its
    # signal handler, no setting turns it off).
    assert set(plain) <= {"Hookpost stopped.", "worker: Warm shutdown (MainProcess)"}, plain
    if os.geteuid() == 0:  # Celery's several-line warning, as one line of the log
        assert output.count("the worker runs as root (uid 0)") == 1


def test_serve_stops_everything_and_fails_when_a_child_dies(start: StartHookpost) -> None:
    serve = start("serve", "--workers", "2", "--concurrency", "1", port=free_port())
    serve.wait_healthy()
    tree = descendants(serve.process.pid)
    gunicorn_master = next(
        process for process in tree if "gunicorn" in command_line(process) and parent_of(process) == serve.process.pid
    )

    os.kill(gunicorn_master.pid, signal.SIGKILL)  # its workers are orphaned, still serving

    assert serve.wait_exit() == 1, serve.output()
    assert "api was killed by SIGKILL unexpectedly" in serve.output()
    eventually(lambda: all_gone(tree), "every child to be gone", timeout=STOP_DEADLINE)
    assert not serve.leftovers()


def test_api_alone_runs_gunicorn_itself_and_stops_on_sigterm(
    start: StartHookpost, env: dict[str, str], sandbox: dict[str, Path]
) -> None:
    token_env = {"HOOKPOST_ADMIN_TOKEN": ADMIN_TOKEN}
    subprocess.run(
        [sys.executable, "-m", "hookpost", "migrate"],
        env={**env, **token_env},
        cwd=sandbox["cwd"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    api = start("api", "--workers", "1", port=free_port(), extra_env=token_env)
    api.wait_healthy()

    # Exec'd, not supervised: signals from a container runtime reach Gunicorn directly.
    tree = descendants(api.process.pid)
    assert "-m gunicorn" in command_line(ProcessId(api.process.pid, 0))
    assert httpx.get(f"{api.base_url}/api/v1/app", timeout=10).status_code == 401
    authorized = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    assert httpx.get(f"{api.base_url}/api/v1/app", headers=authorized, timeout=10).status_code == 200

    api.process.send_signal(signal.SIGTERM)

    assert api.wait_exit() == 0, api.output()
    eventually(lambda: all_gone(tree), "the Gunicorn workers to stop", timeout=STOP_DEADLINE)
    assert "Shutting down" in api.output()  # the worker's graceful stop, which once logged:
    assert "Bad file descriptor" not in api.output()
    assert not any(sandbox["home"].iterdir()), "wrote outside the data directory"
    assert not any(sandbox["cwd"].iterdir()), "wrote outside the data directory"


def _banner_of(start: StartHookpost, extra_env: dict[str, str] | None = None) -> str:
    """What ``hookpost serve`` prints before its children start; the service is then stopped."""
    serve = start("serve", "--workers", "1", "--concurrency", "1", port=free_port(), extra_env=extra_env)
    eventually(lambda: "Ctrl-C to stop." in serve.output(), "the banner", timeout=STARTUP_DEADLINE)
    banner = serve.output().partition("Ctrl-C to stop.")[0]
    serve.process.send_signal(signal.SIGTERM)
    serve.wait_exit()
    return banner


def test_the_banner_shows_the_admin_token_only_when_it_makes_it(start: StartHookpost, sandbox: dict[str, Path]) -> None:
    """Printed at every start, the token went to container logs and the journal."""
    token_file = sandbox["data"] / "admin-token"
    first = _banner_of(start)
    made = token_file.read_text().strip()
    assert made in first
    assert str(token_file) in first

    again = _banner_of(start)
    assert made not in again
    assert f"in {token_file}" in again

    configured = _banner_of(start, {"HOOKPOST_ADMIN_TOKEN": ADMIN_TOKEN})
    assert ADMIN_TOKEN not in configured
    assert made not in configured
    assert "HOOKPOST_ADMIN_TOKEN" in configured


def deliver_a_signed_webhook(base_url: str, token: str, receiver: Receiver) -> None:
    """Over real HTTP: an app, an endpoint on the receiver, a message; then check what came."""
    with httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {token}"}, timeout=10) as api:
        app = api.post("/api/v1/app", json={"name": "x"})
        assert app.status_code == 201, app.text
        app_id = app.json()["id"]
        endpoint = api.post(f"/api/v1/app/{app_id}/endpoint", json={"url": f"{receiver.url}/hook"})
        assert endpoint.status_code == 201, endpoint.text
        secret = api.get(f"/api/v1/app/{app_id}/endpoint/{endpoint.json()['id']}/secret")
        assert secret.status_code == 200, secret.text
        message = api.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "user.created", "payload": {"a": 1}})
        assert message.status_code == 202, message.text

    delivered = receiver.wait_for(lambda requests: len(requests) >= 1, timeout=60)[0]
    assert delivered.path == "/hook"
    webhook = standardwebhooks.Webhook(secret.json()["key"])
    assert webhook.verify(delivered.body, delivered.headers) == {"a": 1}


def assert_stopped_cleanly(serve: Service, tree: set[ProcessId], sandbox: dict[str, Path]) -> None:
    assert serve.wait_exit() == 0, serve.output()
    assert "Hookpost stopped." in serve.output()
    eventually(lambda: all_gone(tree), "every child to be gone", timeout=STOP_DEADLINE)
    assert not serve.leftovers()
    assert not any(sandbox["home"].iterdir()), "wrote outside the data directory"
    assert not any(sandbox["cwd"].iterdir()), "wrote outside the data directory"
