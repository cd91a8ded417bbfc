"""Phase ``startup``: how long each kind of process takes from its start to its first useful
work, as whole processes started the way production starts them.

- **startup-api**: ``uvicorn --factory hookpost.app:create_app`` (the Kubernetes API pod's
  command) from its spawn to the first answered authenticated ``GET /api/v1/app``, with the
  process's CPU seconds at that moment.
- **startup-worker**: with one message already accepted (in the database and the broker) and
  no worker running, ``hookpost worker`` with default settings from its spawn to the message's
  arrival at a loopback receiver, with the CPU seconds of the worker and everything it forked
  at that moment.
- **startup-serve**: ``hookpost serve`` on the embedded default (SQLite and the filesystem
  broker in a new data directory: a first start, migrations included) from its spawn to the
  first answered authenticated API request.

Each is the median of a few runs (one under ``--quick``); every run is a new process.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from hookpost.bench.base import BenchBase, HookpostClient, message_body
from hookpost.bench.stack import CELERY_QUEUE, Child, Phase, Stack, descendants, free_port, process_cpu_seconds, spawn

POLL_SECONDS = 0.02  # how often a starting process is asked; its answer is noted within this
START_TIMEOUT = 120.0  # a process not answering by then has failed, not started slowly

# The targets, on 2 cores.
API_TARGET_S = 1.5
WORKER_TARGET_S = 2.0
WORKER_CPU_TARGET_S = 2.0
SERVE_TARGET_S = 6.0


def api_argv(port: int) -> list[str]:
    """The API as one Uvicorn process with the app factory (deploy/k8s/api.yaml's command)."""
    return [
        *(sys.executable, "-m", "uvicorn", "--factory", "hookpost.app:create_app"),
        *("--host", "127.0.0.1", "--port", str(port)),
    ]


def cli_argv(*args: str) -> list[str]:
    """A ``hookpost`` subcommand, run by this interpreter."""
    return [sys.executable, "-m", "hookpost", *args]


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and of everything it forked that is still running."""
    return sum(process_cpu_seconds(p) for p in (pid, *descendants(pid)))


def wait_until(child: Child, ready: Callable[[], bool], what: str) -> float:
    """Poll ``ready`` until it holds; the monotonic time it first did."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        child.check()
        if ready():
            return time.monotonic()
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"{child.name}: {what} not within {START_TIMEOUT:.0f}s:\n{child.tail()}")


def api_answers(client: httpx.Client, url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return client.get(url).status_code == 200
        except httpx.TransportError:
            return False

    return ready


def queued_tasks(phase: Phase) -> int:
    """Tasks waiting in Hookpost's queue on the phase's broker."""
    settings = phase.settings
    if settings.broker_url.startswith("filesystem"):
        return sum(1 for _ in (settings.broker_dir / "queue").glob("*.msg"))
    from kombu.connection import Connection  # noqa: PLC0415
    from kombu.exceptions import ChannelError  # noqa: PLC0415

    with Connection(settings.broker_url, connect_timeout=5) as connection:  # type: ignore[no-untyped-call]
        try:
            declared = connection.default_channel.queue_declare(CELERY_QUEUE, passive=True)
        except ChannelError:  # Redis: no queue until its first task (RabbitMQ: declared by the API)
            return 0
        return int(declared.message_count)


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


class StartupPhase(BenchBase):
    def startup_phase(self) -> None:
        runs = self.config.startup_runs
        phase = self.env.phase("startup", HOOKPOST_ACCESS_LOG="0")
        stack = Stack(phase, self.env.logs)
        try:
            with self.ui.step(f"startup: the API started {runs} times"):
                api = [self._api_run(phase) for _ in range(runs)]
            self.add(self._startup_scenario("startup-api", api, API_TARGET_S))
            self.ui.done_step()
            with self.ui.step(f"startup: a worker started {runs} times, a message waiting for each"):
                receiver = stack.start_receiver()
                api_url = stack.start_api(workers=1)
                hookpost = HookpostClient(api_url, self.env.admin_token)
                worker = [self._worker_run(phase, hookpost, receiver, index) for index in range(runs)]
            self.add(self._startup_scenario("startup-worker", worker, WORKER_TARGET_S))
            self.ui.done_step()
        finally:
            stack.stop()
        with self.ui.step(f"startup: hookpost serve started {runs} times on new data directories"):
            serve = [self._serve_run(index) for index in range(runs)]
        self.add(self._startup_scenario("startup-serve", serve, SERVE_TARGET_S))
        self.ui.done_step()

    def _startup_scenario(self, name: str, runs: list[dict[str, float]], target: float) -> dict[str, Any]:
        seconds = median([run["seconds"] for run in runs])
        cpu = median([run["cpu_s"] for run in runs])
        scenario = {
            "name": name,
            "config": {"runs": len(runs), "target_s": target},
            "seconds": seconds,
            "cpu_s": cpu,
            "runs": runs,
        }
        self.ui.log(f"{name}: {seconds} s to its first work (median of {len(runs)}), {cpu} s of CPU by then")
        return scenario

    def _api_run(self, phase: Phase) -> dict[str, float]:
        port = free_port()
        return self._until_answered("startup-api", api_argv(port), phase.env, port, stop_timeout=5)

    def _worker_run(self, phase: Phase, hookpost: HookpostClient, receiver: str, index: int) -> dict[str, float]:
        uid = f"startup-{index}"
        path = f"/{uid}"
        hookpost.application_with_endpoint(uid, receiver + path)
        with hookpost.client() as client:
            client.post(f"/app/{uid}/msg", content=message_body()).raise_for_status()
        # Published by the API's dispatcher (at once when it is idle): its task waits in the broker.
        deadline = time.monotonic() + START_TIMEOUT
        while queued_tasks(phase) == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("startup: the message's task never reached the broker")
            time.sleep(POLL_SECONDS)
        started = time.monotonic()
        child = spawn("startup-worker", cli_argv("worker"), phase.env, self.env.logs)
        try:
            delivered = wait_until(child, lambda: self.received(receiver, path) > 0, "the first delivery")
            cpu = tree_cpu_seconds(child.pid)
        finally:
            child.stop(timeout=10)
        return {"seconds": round(delivered - started, 3), "cpu_s": round(cpu, 3)}

    def _serve_run(self, index: int) -> dict[str, float]:
        data_dir = self.workdir / f"startup-serve-{index}"
        port = free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith(("HOOKPOST_", "WEB_CONCURRENCY"))}
        env.update(HOOKPOST_DATA_DIR=str(data_dir), HOOKPOST_ADMIN_TOKEN=self.env.admin_token, PYTHONUNBUFFERED="1")
        return self._until_answered("startup-serve", cli_argv("serve", "--port", str(port)), env, port, stop_timeout=15)

    def _until_answered(
        self, name: str, argv: list[str], env: dict[str, str], port: int, *, stop_timeout: float
    ) -> dict[str, float]:
        """Start a process serving the API on ``port``: seconds to its first answered authenticated
        request, and the CPU of it and its children by then."""
        headers = {"authorization": f"Bearer {self.env.admin_token}"}
        with httpx.Client(headers=headers, timeout=5) as client:
            started = time.monotonic()
            child = spawn(name, argv, env, self.env.logs)
            try:
                answered = wait_until(
                    child, api_answers(client, f"http://127.0.0.1:{port}/api/v1/app"), "an answered request"
                )
                cpu = tree_cpu_seconds(child.pid)
            finally:
                child.stop(timeout=stop_timeout)
        return {"seconds": round(answered - started, 3), "cpu_s": round(cpu, 3)}
