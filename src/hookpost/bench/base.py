"""What every phase of the bench shares: its settings, the message it sends, the progress
line, a client for setting scenarios up, and the scenarios measured so far."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

from hookpost.bench.loadgen import HttpRequest, LoadResult, LoadRun, start_closed
from hookpost.bench.stack import CpuWindow, Environment, Stack
from hookpost.kit.ids import created_ms

PAYLOAD_BYTES = 300
NAIVE_DELIVERY_MODULE = "hookpost.bench.naive_delivery"
EVENT_TYPE = "invoice.paid"


@dataclass(frozen=True)
class BenchConfig:
    quick: bool
    workers: int = 2
    connections: int = 64
    closed_seconds: float = 10.0
    rounds: int = 3
    warmup_seconds: float = 2.0
    low_rate: float = 10.0
    low_rate_seconds: float = 30.0
    e2e_rates: tuple[int, ...] = (100, 500, 1000)
    e2e_seconds: float = 60.0
    fairness_rate: float = 200.0  # msg/s to each of the two endpoints
    fairness_seconds: float = 30.0
    drain_timeout: float = 30.0
    scale_workers: tuple[int, ...] = (1, 2, 4)
    scale_concurrency: tuple[int, ...] = (1, 2, 4, 8)
    scale_backlog: int = 1000
    limit_seconds: float = 10.0  # the delivery limit's run
    limit_connections: int = 32  # requests in flight per limit sender (one sender per core)
    drain_backlog: int = 5000  # messages drained by one `hookpost worker` with default settings
    naive_backlog: int = 2000  # tasks drained by the naive delivery worker
    # tenants: one application's backlog for a fast receiver, another's endpoints that never
    # answer, and a third sending steadily to its own fast receiver, all at once.
    tenants_backlog: int = 6000
    tenants_hanging: int = 40  # endpoints, each on a receiver of its own
    tenants_hanging_rate: float = 1.0  # msg/s to the hanging application (each to all its endpoints)
    tenants_rate: float = 4.0  # msg/s of the steady application
    tenants_seconds: float = 60.0
    # history: past messages loaded by SQL (each with its delivery and attempt), then each read
    # timed this many times.
    history_messages: int = 5_000_000
    history_reads: int = 30
    # history, end to end: a rate a 2-core machine delivers with room (msg/s), offered this long
    # on fresh tables and again on the loaded ones.
    history_e2e_rate: float = 200.0
    history_e2e_seconds: float = 30.0
    # destinations: one application's backlog, taken out by a FIFO destination, then a poller.
    destinations_backlog: int = 20_000
    # tracing: the end-to-end offered rate (msg/s) and seconds of each of its rounds, tracing off and on.
    tracing_rate: float = 50.0  # one both stacks carry on a small busy machine: the figures are CPU and latency
    tracing_seconds: float = 20.0
    # startup: each kind of process started this many times (the median is reported).
    startup_runs: int = 3
    use_wrk: bool = True

    @classmethod
    def make(cls, *, quick: bool, workers: int, use_wrk: bool) -> BenchConfig:
        if not quick:
            return cls(quick=False, workers=workers, use_wrk=use_wrk)
        return cls(
            quick=True,
            workers=workers,
            closed_seconds=3.0,
            rounds=1,
            warmup_seconds=1.0,
            low_rate_seconds=3.0,
            e2e_rates=(100, 1000),
            e2e_seconds=3.0,
            fairness_rate=50.0,
            fairness_seconds=3.0,
            drain_timeout=5.0,
            scale_workers=(1, workers),
            scale_concurrency=(1,),
            scale_backlog=40,
            limit_seconds=2.0,
            drain_backlog=200,
            naive_backlog=100,
            tenants_backlog=300,
            tenants_hanging=10,
            tenants_seconds=5.0,
            history_messages=3000,
            history_reads=10,
            history_e2e_rate=50.0,
            history_e2e_seconds=2.0,
            destinations_backlog=1000,
            tracing_seconds=3.0,
            startup_runs=1,
            use_wrk=use_wrk,
        )


def message_body(event_type: str = EVENT_TYPE) -> bytes:
    """A message whose payload is exactly ``PAYLOAD_BYTES`` of JSON."""
    payload: dict[str, Any] = {
        "invoice": "in_1NqTx2Lkdi4bq9",
        "customer": "cus_Oc9kQ3xY7w",
        "amount": 1999,
        "currency": "eur",
        "note": "",
    }
    payload["note"] = "x" * (PAYLOAD_BYTES - len(json.dumps(payload, separators=(",", ":"))))
    return json.dumps({"eventType": event_type, "payload": payload}, separators=(",", ":")).encode()


def delivered_body() -> str:
    """What a receiver gets for ``message_body()``: its 300-byte payload."""
    payload: str = json.dumps(json.loads(message_body())["payload"], separators=(",", ":"))
    return payload


def ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def per(cpu_s: float, count: int) -> float | None:
    """CPU milliseconds per item."""
    return round(1000 * cpu_s / count, 3) if count else None


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class Receipts:
    """What a receiver's path got: when each webhook first arrived, and how many requests in all."""

    first: dict[str, float]  # webhook id -> unix time of its first arrival
    total: int

    def latencies_ms(self) -> list[float]:
        """From each message's creation (the time in its id) to its first receipt."""
        return [arrived * 1000 - created_ms(webhook_id) for webhook_id, arrived in self.first.items()]


def latency_figures(latencies: list[float]) -> dict[str, float | None]:
    return {
        "p50_ms": ms(percentile(latencies, 0.50)),
        "p99_ms": ms(percentile(latencies, 0.99)),
        "max_ms": ms(max(latencies) if latencies else None),
    }


class Ui:
    """Rich progress bars: one for the whole run, one for the step under way."""

    def __init__(self, console: Console, steps: int) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.overall = self.progress.add_task("[bold]hookpost bench", total=steps)

    def __enter__(self) -> Ui:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def log(self, text: str) -> None:
        self.progress.console.log(text, markup=False)

    def done_step(self) -> None:
        self.progress.advance(self.overall)

    @contextmanager
    def step(self, description: str, total: float | None = None) -> Iterator[Callable[[float], None]]:
        task = self.progress.add_task(description, total=total)

        def update(completed: float) -> None:
            self.progress.update(task, completed=completed)

        try:
            yield update
        finally:
            self.progress.remove_task(task)

    def run_load(self, description: str, run: LoadRun, seconds: float, check: Callable[[], None]) -> LoadResult:
        limit = 2 * seconds + 30  # a generator that runs on past this has hung
        with self.step(description, total=seconds) as update:
            while run.running():
                update(min(seconds, time.monotonic() - run.started))
                try:
                    check()
                    if time.monotonic() - run.started > limit:
                        raise RuntimeError(f"{description}: the load generator ran past {limit:.0f}s")
                except Exception:
                    run.stop()
                    raise
                time.sleep(0.1)
        return run.finish(timeout=5)


class HookpostClient:
    """Just enough of the API to set a scenario up."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url + "/api/v1", headers=self.headers, timeout=30)

    def application(self, uid: str) -> None:
        with self.client() as client:
            client.post("/app", json={"name": uid, "uid": uid}).raise_for_status()

    def application_with_endpoint(self, uid: str, url: str) -> None:
        self.application(uid)
        self.add_endpoint(uid, url, "main")

    def add_destination(self, uid: str, destination: dict[str, Any]) -> str:
        """Create a destination of application ``uid``; its id."""
        with self.client() as client:
            answer = client.post(f"/app/{uid}/destination", json=destination)
            answer.raise_for_status()
            destination_id: str = answer.json()["id"]
            return destination_id

    def add_endpoint(self, uid: str, url: str, endpoint_uid: str) -> None:
        with self.client() as client:
            client.post(f"/app/{uid}/endpoint", json={"url": url, "uid": endpoint_uid}).raise_for_status()

    def disable_endpoint(self, uid: str) -> None:
        """Retire a run's endpoint: what it left undelivered stops competing with later runs."""
        with self.client() as client:
            client.patch(f"/app/{uid}/endpoint/main", json={"disabled": True}).raise_for_status()

    def enable_endpoint(self, uid: str) -> None:
        with self.client() as client:
            client.patch(f"/app/{uid}/endpoint/main", json={"disabled": False}).raise_for_status()

    def message_request(self, uid: str) -> HttpRequest:
        return HttpRequest(f"{self.base_url}/api/v1/app/{uid}/msg", message_body(), self.headers)


@dataclass
class BenchBase:
    config: BenchConfig
    env: Environment
    ui: Ui
    scenarios: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)

    @property
    def workdir(self) -> Path:
        return self.env.workdir

    def add(self, scenario: dict[str, Any]) -> dict[str, Any]:
        self.scenarios.append(scenario)
        return scenario

    def find(self, name: str) -> dict[str, Any] | None:
        return next((s for s in self.scenarios if s["name"] == name), None)

    @staticmethod
    def received(receiver: str, path: str) -> int:
        counts: dict[str, int] = httpx.get(receiver + "/_stats", timeout=10).json()
        return counts.get(path, 0)

    @staticmethod
    def receipts(receiver: str, path: str) -> Receipts:
        raw = httpx.get(receiver + "/_receipts", params={"path": path}, timeout=30).json()
        first: dict[str, float] = {}
        for webhook_id, arrived in raw:
            first.setdefault(str(webhook_id), float(arrived))
        return Receipts(first, len(raw))

    def _closed(
        self, description: str, request: HttpRequest, seconds: float, stack: Stack, server: str
    ) -> tuple[LoadResult, dict[str, float]]:
        window = CpuWindow(stack.pids(server))
        run = start_closed(request, self.config.connections, seconds, self.workdir, use_wrk=self.config.use_wrk)
        result = self.ui.run_load(description, run, seconds, stack.check)
        cpu = window.close()
        if "warm-up" not in description:
            self.ui.log(
                f"{description}: {result.ok_per_s:,.0f}/s p50 {result.p50_ms:.1f} ms p99 {result.p99_ms:.1f} ms "
                f"errors {result.errors} (generator CPU {result.cpu_share():.0%}, "
                f"machine busy {cpu['machine_busy']:.0%})"
            )
        return result, cpu
