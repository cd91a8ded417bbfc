"""What the bench measures, phase by phase, and how each figure is made.

Phase ``ingest`` runs the three servers side by side (the limit app, the naive service and
Hookpost's API, same Gunicorn config and worker count) and loads them in turns, round
after round, so they share whatever else the machine is doing; then Hookpost alone with
1, 2 and 4 workers. Phase ``e2e`` runs the whole service as ``hookpost serve`` does (API,
Celery worker, scheduler) with a receiver on loopback. Then, on the same receiver and
broker, back to back: the delivery limit (one bare httpx client per core, no bookkeeping),
the naive delivery service (a Celery task per message) draining a backlog, and one
``hookpost worker`` with default settings draining one (``drain``), then a worker of each
concurrency.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

from hookpost.bench.apps import create_naive_table
from hookpost.bench.loadgen import HttpRequest, LoadResult, LoadRun, start_closed, start_python
from hookpost.bench.stack import (
    HOOKPOST_APP,
    LIMIT_APP,
    NAIVE_APP,
    Child,
    CpuWindow,
    Environment,
    Stack,
    pss_mb,
    rss_mb,
)
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


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _per(cpu_s: float, count: int) -> float | None:
    """CPU milliseconds per item."""
    return round(1000 * cpu_s / count, 3) if count else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


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

    def application_with_endpoint(self, uid: str, url: str) -> None:
        with httpx.Client(base_url=self.base_url + "/api/v1", headers=self.headers, timeout=30) as client:
            client.post("/app", json={"name": uid, "uid": uid}).raise_for_status()
            client.post(f"/app/{uid}/endpoint", json={"url": url, "uid": "main"}).raise_for_status()

    def add_endpoint(self, uid: str, url: str, endpoint_uid: str) -> None:
        with httpx.Client(base_url=self.base_url + "/api/v1", headers=self.headers, timeout=30) as client:
            client.post(f"/app/{uid}/endpoint", json={"url": url, "uid": endpoint_uid}).raise_for_status()

    def disable_endpoint(self, uid: str) -> None:
        """Retire a run's endpoint: what it left undelivered stops competing with later runs."""
        with httpx.Client(base_url=self.base_url + "/api/v1", headers=self.headers, timeout=30) as client:
            client.patch(f"/app/{uid}/endpoint/main", json={"disabled": True}).raise_for_status()

    def message_request(self, uid: str) -> HttpRequest:
        return HttpRequest(f"{self.base_url}/api/v1/app/{uid}/msg", message_body(), self.headers)


@dataclass
class Bench:
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

    # --- phase 1: limit, naive, ingest side by side; ingest scaling ------------------------

    def ingest_phase(self) -> None:
        cfg = self.config
        phase = self.env.phase("ingest")
        stack = Stack(phase, self.env.logs)
        try:
            import asyncio  # noqa: PLC0415

            asyncio.run(create_naive_table(phase.settings.database_url))
            with self.ui.step("starting the limit app, the naive service and Hookpost"):
                limit_url = stack.start_api(LIMIT_APP, cfg.workers, name="limit", wait=False)
                naive_url = stack.start_api(NAIVE_APP, cfg.workers, name="naive", wait=False)
                api_url = stack.start_api(HOOKPOST_APP, cfg.workers, name="api", wait=False)
                for server in ("limit", "naive", "api"):
                    stack.wait_api(server)
            hookpost = HookpostClient(api_url, self.env.admin_token)
            # The endpoint is never delivered to in this phase: no worker runs.
            hookpost.application_with_endpoint("bench-ingest", "http://127.0.0.1:9/never")
            body = message_body()
            requests = {
                "limit": (HttpRequest(limit_url + "/", body, {"content-type": "application/json"}), "limit"),
                "naive": (HttpRequest(naive_url + "/msg", body, {"content-type": "application/json"}), "naive"),
                "ingest": (hookpost.message_request("bench-ingest"), "api"),
            }
            self.ui.done_step()
            results: dict[str, list[tuple[LoadResult, dict[str, float]]]] = {name: [] for name in requests}
            for round_number in range(1, cfg.rounds + 1):
                for name, (request, server) in requests.items():
                    if round_number == 1:
                        self._closed(f"{name}: warm-up", request, cfg.warmup_seconds, stack, server)
                    results[name].append(
                        self._closed(
                            f"{name}: round {round_number}/{cfg.rounds}", request, cfg.closed_seconds, stack, server
                        )
                    )
                self.ui.done_step()
            api_rss = [rss_mb(pid) for pid in stack.children["api"].pids()[1:]]
            self.memory["api_workers_after_ingest_mb"] = [round(v, 1) for v in api_rss]
            for name, (_, server) in requests.items():
                scenario = self._closed_scenario(name, results[name], server)
                if name == "ingest":
                    scenario["rss_mb"] = round(max(api_rss), 1) if api_rss else None
                    scenario["config"]["endpoints"] = 1
                    scenario["config"]["payload_bytes"] = PAYLOAD_BYTES
                self.add(scenario)
            self._ratios()
            stack.stop()
            for workers in cfg.scale_workers:
                name = f"scale-ingest-{workers}w"
                if workers == cfg.workers:
                    same = dict(self.find("ingest") or {})
                    self.add(
                        {
                            **same,
                            "name": name,
                            "config": {**same.get("config", {}), "workers": workers, "reused": "ingest"},
                        }
                    )
                    continue
                with self.ui.step(f"starting Hookpost with {workers} worker(s)"):
                    url = stack.start_api(HOOKPOST_APP, workers, name="api")
                request = HookpostClient(url, self.env.admin_token).message_request("bench-ingest")
                self._closed(f"{name}: warm-up", request, cfg.warmup_seconds, stack, "api")
                result = self._closed(name, request, cfg.closed_seconds, stack, "api")
                scenario = self._closed_scenario(name, [result], "api")
                scenario["config"]["workers"] = workers
                scenario["rss_mb"] = round(max(rss_mb(pid) for pid in stack.children["api"].pids()[1:]), 1)
                self.add(scenario)
                stack.stop("api")
            self.ui.done_step()
        finally:
            stack.stop()

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

    def _closed_scenario(
        self, name: str, runs: list[tuple[LoadResult, dict[str, float]]], server: str
    ) -> dict[str, Any]:
        loads = [load for load, _ in runs]
        first = loads[0]
        rate_key = "rps" if name in {"limit", "naive"} else "msg_per_s"
        return {
            "name": name,
            "config": {
                "server": server,
                "workers": self.config.workers,
                "connections": first.connections,
                "seconds": self.config.closed_seconds,
                "rounds": len(loads),
                "generator": first.generator,
                "figures": "median of rounds" if len(loads) > 1 else "one run",
            },
            rate_key: round(statistics.median(load.ok_per_s for load in loads), 1),
            "p50_ms": _ms(statistics.median(load.p50_ms for load in loads)),
            "p99_ms": _ms(statistics.median(load.p99_ms for load in loads)),
            "max_ms": _ms(max(load.max_ms for load in loads)),
            "requests": sum(load.requests for load in loads),
            "errors": sum(load.errors for load in loads),
            "generator_cpu_share": round(statistics.median(load.cpu_share() for load in loads), 3),
            "server_cpu_share": round(statistics.median(cpu["processes_share"] for _, cpu in runs), 3),
            # The server's own CPU per answered request: the figure least moved by what else runs.
            "server_cpu_ms_per_req": round(
                1000 * sum(cpu["processes_cpu_s"] for _, cpu in runs) / max(1, sum(load.requests for load in loads)), 3
            ),
            "machine_busy": round(statistics.median(cpu["machine_busy"] for _, cpu in runs), 3),
        }

    def _ratios(self) -> None:
        limit, naive, ingest = self.find("limit"), self.find("naive"), self.find("ingest")
        if not (limit and naive and ingest):
            return
        ingest["ratio_to_limit"] = round(ingest["msg_per_s"] / limit["rps"], 3) if limit["rps"] else None
        ingest["ratio_to_naive"] = round(ingest["msg_per_s"] / naive["rps"], 3) if naive["rps"] else None
        naive["ratio_to_limit"] = round(naive["rps"] / limit["rps"], 3) if limit["rps"] else None

    # --- phase 2: end to end ---------------------------------------------------------------

    def e2e_phase(self) -> None:
        cfg = self.config
        phase = self.env.phase("e2e")
        stack = Stack(phase, self.env.logs)
        try:
            with self.ui.step("starting the whole service (API, worker, scheduler) and a receiver"):
                api_url = stack.start_api(HOOKPOST_APP, cfg.workers, wait=False)
                stack.start_worker()
                stack.start_scheduler()
                receiver = stack.start_receiver()
                stack.wait_api("api")
            hookpost = HookpostClient(api_url, self.env.admin_token)
            self.ui.done_step()
            runs: list[tuple[str, float, float]] = [(f"latency-{cfg.low_rate:g}", cfg.low_rate, cfg.low_rate_seconds)]
            runs += [(f"e2e-{rate}", float(rate), cfg.e2e_seconds) for rate in cfg.e2e_rates]
            for name, rate, seconds in runs:
                path = f"/{name}"
                hookpost.application_with_endpoint(name, receiver + path)
                self.add(self._offered(name, rate, seconds, hookpost.message_request(name), receiver, path, stack))
                # Workers serve the longest-due deliveries first: a backlog this run left would
                # otherwise be the next run's (or the scaling's) first work.
                hookpost.disable_endpoint(name)
                self.ui.done_step()
            # The fast endpoint alone first, then beside the slow one: what the slow one costs it.
            self.add(self._fairness(hookpost, receiver, stack, with_slow=False))
            self.add(self._fairness(hookpost, receiver, stack, with_slow=True))
            self.ui.done_step()
            self.memory.update(self._measure_memory(stack))
            # Delivery on the same API and receiver: no worker while a backlog fills. The limit,
            # the naive service and Hookpost's drain back to back, so their ratios share a stretch of time.
            stack.stop("worker", "scheduler")
            stack.purge_queue()
            self.add(self._delivery_limit(stack, receiver))
            self.ui.done_step()
            self.add(self._naive_delivery(stack, receiver))
            self.ui.done_step()
            hookpost.application_with_endpoint("drain", receiver + "/drain")
            self.add(self._drain("drain", None, cfg.drain_backlog, hookpost.message_request("drain"), receiver, stack))
            self._delivery_ratios()
            self.ui.done_step()
            self._delivery_scaling(stack, hookpost, receiver)
        finally:
            stack.stop()

    def _offered(
        self, name: str, rate: float, seconds: float, request: HttpRequest, receiver: str, path: str, stack: Stack
    ) -> dict[str, Any]:
        # Enough connections that a slow moment does not throttle the offered rate.
        connections = max(8, min(256, int(rate // 10)))
        window = CpuWindow(stack.pids())
        started = time.time()
        grace = 2.0 if self.config.quick else 10.0
        run = start_python(
            request, self.workdir, mode="rate", connections=connections, duration=seconds, rate=rate, grace=grace
        )
        load = self.ui.run_load(f"{name}: offering {rate:g} msg/s for {seconds:g}s", run, seconds + grace, stack.check)
        offer_ended = time.time()
        cpu = window.close()
        # The generator counts a message accepted only when it saw the 202; one it gave up on
        # at its deadline may still have been stored and delivered, so more can arrive than it
        # counted: what is left is never below zero.
        backlog_at_end = max(0, load.ok - self._received(receiver, path))
        drained_after: float | None = None
        with self.ui.step(f"{name}: waiting for the backlog ({backlog_at_end}) to drain", total=load.ok) as update:
            deadline = time.monotonic() + self.config.drain_timeout
            while True:
                received = self._received(receiver, path)
                update(received)
                if received >= load.ok:
                    drained_after = max(0.0, time.time() - offer_ended)
                    break
                if time.monotonic() > deadline:
                    break
                stack.check()
                time.sleep(0.1)
        receipts = self._receipts(receiver, path)
        first: dict[str, float] = {}
        for webhook_id, arrived in receipts:
            first.setdefault(webhook_id, arrived)
        latencies = [arrived * 1000 - created_ms(webhook_id) for webhook_id, arrived in first.items()]
        in_window = sum(1 for arrived in first.values() if arrived <= offer_ended)
        scenario: dict[str, Any] = {
            "name": name,
            "config": {
                "offered_msg_per_s": rate,
                "seconds": seconds,
                "connections": connections,
                "generator": load.generator,
                "workers": self.config.workers,
                "celery_concurrency": "default (one per CPU)",
                "latency": "message created (time in its id) -> receipt at the endpoint, first attempt",
            },
            "msg_per_s": round(in_window / (offer_ended - started), 1),
            "p50_ms": _ms(_percentile(latencies, 0.50)),
            "p99_ms": _ms(_percentile(latencies, 0.99)),
            "max_ms": _ms(max(latencies) if latencies else None),
            "accepted": load.ok,
            "accepted_msg_per_s": round(load.ok_per_s, 1),
            "ingest_p50_ms": _ms(load.p50_ms),
            "ingest_p99_ms": _ms(load.p99_ms),
            "errors": load.errors,
            "delivered": len(first),
            "duplicates": len(receipts) - len(first),
            "backlog_at_end": backlog_at_end,
            "backlog_after_drain": max(0, load.ok - len(first)),
            "drained_after_s": None if drained_after is None else round(drained_after, 2),
            "generator_cpu_share": round(load.cpu_share(), 3),
            "stack_cpu_share": cpu["processes_share"],
            "machine_busy": cpu["machine_busy"],
            # Everything the machine did while the messages were offered (API, worker, receiver,
            # database, the generator), per message delivered in that window.
            "machine_cpu_ms_per_msg": _per(cpu["machine_cpu_s"], in_window),
            "stack_cpu_ms_per_msg": _per(cpu["processes_cpu_s"], in_window),
        }
        self.ui.log(
            f"{name}: accepted {load.ok_per_s:,.0f}/s, delivered {scenario['msg_per_s']:,.0f}/s in the window, "
            f"p50 {scenario['p50_ms']} ms p99 {scenario['p99_ms']} ms, backlog {backlog_at_end} -> "
            f"{scenario['backlog_after_drain']} (machine busy {cpu['machine_busy']:.0%})"
        )
        return scenario

    def _fairness(self, hookpost: HookpostClient, receiver: str, stack: Stack, *, with_slow: bool) -> dict[str, Any]:
        """Two endpoints on two receivers, one answering after 5 s, one at once, the same rate
        to each: how long the fast one's messages take while the slow one backs up. Without
        ``with_slow``, the fast one alone at the same rate: what the machine gives it anyway."""
        cfg = self.config
        name = "fairness" if with_slow else "fairness-fast-alone"
        fast_uid, fast_path = f"{name}-fast", f"/{name}-fast"
        hookpost.application_with_endpoint(fast_uid, receiver + fast_path)
        uids = [fast_uid]
        slow_receiver = ""
        if with_slow:
            slow_receiver = stack.start_receiver("slow-receiver")
            hookpost.application_with_endpoint("fairness-slow", slow_receiver + "/slow")
            uids.append("fairness-slow")
        grace = 2.0 if cfg.quick else 10.0
        runs = [
            start_python(
                hookpost.message_request(uid),
                self.workdir,
                mode="rate",
                connections=max(8, int(cfg.fairness_rate // 10)),
                duration=cfg.fairness_seconds,
                rate=cfg.fairness_rate,
                grace=grace,
            )
            for uid in uids
        ]
        description = "a slow and a fast endpoint" if with_slow else "the fast endpoint alone"
        self.ui.run_load(
            f"{name}: {cfg.fairness_rate:g} msg/s to {description}", runs[0], cfg.fairness_seconds + grace, stack.check
        )
        loads = [run.finish(timeout=30) for run in runs]
        fast_load = loads[0]
        deadline = time.monotonic() + cfg.drain_timeout
        while self._received(receiver, fast_path) < fast_load.ok and time.monotonic() < deadline:
            time.sleep(0.1)
        first: dict[str, float] = {}
        for webhook_id, arrived in self._receipts(receiver, fast_path):
            first.setdefault(webhook_id, arrived)
        latencies = [arrived * 1000 - created_ms(webhook_id) for webhook_id, arrived in first.items()]
        for uid in uids:
            hookpost.disable_endpoint(uid)
        scenario: dict[str, Any] = {
            "name": name,
            "config": {
                "offered_msg_per_s_each": cfg.fairness_rate,
                "seconds": cfg.fairness_seconds,
                "slow_answers_after_s": 5.0 if with_slow else None,
                "latency": "the fast endpoint's messages: created -> receipt, first attempt",
            },
            "msg_per_s": round(len(first) / max(1e-9, cfg.fairness_seconds), 1),
            "p50_ms": _ms(_percentile(latencies, 0.50)),
            "p99_ms": _ms(_percentile(latencies, 0.99)),
            "max_ms": _ms(max(latencies) if latencies else None),
            "accepted_fast": fast_load.ok,
            "delivered_fast": len(first),
        }
        note = ""
        if with_slow:
            slow_received = self._received(slow_receiver, "/slow")
            stack.stop("slow-receiver")
            scenario.update(accepted_slow=loads[1].ok, slow_received=slow_received)
            note = f"; the slow one received {slow_received}/{loads[1].ok}"
        self.ui.log(
            f"{name}: fast endpoint p50 {scenario['p50_ms']} ms p99 {scenario['p99_ms']} ms "
            f"({len(first)}/{fast_load.ok} delivered){note}"
        )
        return scenario

    @staticmethod
    def _received(receiver: str, path: str) -> int:
        counts: dict[str, int] = httpx.get(receiver + "/_stats", timeout=10).json()
        return counts.get(path, 0)

    @staticmethod
    def _receipts(receiver: str, path: str) -> list[tuple[str, float]]:
        raw = httpx.get(receiver + "/_receipts", params={"path": path}, timeout=30).json()
        return [(str(webhook_id), float(arrived)) for webhook_id, arrived in raw]

    def _measure_memory(self, stack: Stack) -> dict[str, Any]:
        processes: list[dict[str, Any]] = []
        for name in ("api", "worker", "scheduler"):
            child = stack.children.get(name)
            if child is None:
                continue
            for index, pid in enumerate(child.pids()):
                role = {"api": ("gunicorn master", "api worker"), "worker": ("celery main", "celery pool")}.get(
                    name, ("celery beat", "celery beat child")
                )[0 if index == 0 else 1]
                processes.append(
                    {"process": role, "pid": pid, "rss_mb": round(rss_mb(pid), 1), "pss_mb": round(pss_mb(pid), 1)}
                )
        return {
            "processes": processes,
            "stack_rss_mb": round(sum(p["rss_mb"] for p in processes), 1),
            "stack_pss_mb": round(sum(p["pss_mb"] for p in processes), 1),
        }

    # --- phase 3: delivery scaling ---------------------------------------------------------

    def _delivery_scaling(self, stack: Stack, hookpost: HookpostClient, receiver: str) -> None:
        for concurrency in self.config.scale_concurrency:
            name = f"scale-delivery-c{concurrency}"
            hookpost.application_with_endpoint(name, receiver + f"/{name}")
            request = hookpost.message_request(name)
            self.add(self._drain(name, concurrency, self.config.scale_backlog, request, receiver, stack))
            self.ui.done_step()

    def _delivery_limit(self, stack: Stack, receiver: str) -> dict[str, Any]:
        """One bare asyncio httpx client per core posting signed webhooks to the receiver."""
        cfg = self.config
        path = "/delivery-limit"
        spec_file = self.workdir / "limit-sender.json"
        body = delivered_body()
        spec = {"url": receiver + path, "body": body, "connections": cfg.limit_connections}
        spec_file.write_text(json.dumps({**spec, "duration": cfg.limit_seconds}))
        cores = os.cpu_count() or 1
        window = CpuWindow(stack.pids("receiver"))
        runs = [
            LoadRun(
                [sys.executable, "-m", "hookpost.bench.limit_sender", str(spec_file)],
                "limit-sender",
                self.workdir,
                lambda raw, cpu: LoadResult(**{**raw, "cpu_s": cpu}),
            )
            for _ in range(cores)
        ]
        self.ui.run_load(
            f"delivery limit: {cores} httpx senders for {cfg.limit_seconds:g}s",
            runs[0],
            cfg.limit_seconds + 5,
            stack.check,
        )
        loads = [run.finish(timeout=30) for run in runs]
        cpu = window.close()
        ok = sum(load.ok for load in loads)
        senders_cpu = sum(load.cpu_s for load in loads)
        rate = ok / max(load.duration_s for load in loads)
        self.ui.log(f"delivery limit: {rate:,.0f} requests/s ({ok} answered, {sum(lo.errors for lo in loads)} errors)")
        return {
            "name": "delivery-limit",
            "config": {
                "senders": cores,
                "connections_each": cfg.limit_connections,
                "seconds": cfg.limit_seconds,
                "client": loads[0].generator,
                "body": f"{len(body)} bytes, signed per request",
                "receiver": "raw ASGI on Uvicorn (httptools, uvloop)",
            },
            "msg_per_s": round(rate, 1),
            "p50_ms": _ms(statistics.median(load.p50_ms for load in loads)),
            "p99_ms": _ms(max(load.p99_ms for load in loads)),
            "max_ms": _ms(max(load.max_ms for load in loads)),
            "requests": ok,
            "errors": sum(load.errors for load in loads),
            "senders_cpu_ms_per_req": _per(senders_cpu, ok),
            "receiver_cpu_ms_per_req": _per(cpu["processes_cpu_s"], ok),
            "machine_cpu_ms_per_req": _per(cpu["machine_cpu_s"], ok),
            "machine_busy": cpu["machine_busy"],
        }

    def _naive_delivery(self, stack: Stack, receiver: str) -> dict[str, Any]:
        """A Celery task per message, ``httpx.post`` inside: a backlog, then a worker drains it."""
        backlog = self.config.naive_backlog
        path = "/naive-delivery"
        body_file = self.workdir / "naive-body.json"
        body_file.write_text(delivered_body())
        with self.ui.step(f"naive delivery: queueing {backlog} tasks"):
            stack.run_module(NAIVE_DELIVERY_MODULE, "purge")
            stack.run_module(NAIVE_DELIVERY_MODULE, "enqueue", receiver + path, str(backlog), str(body_file))
        worker = stack.start_naive_worker()
        try:
            scenario = self._time_drain("naive-delivery", worker, backlog, receiver, path)
        finally:
            stack.stop("naive-worker")
            stack.run_module(NAIVE_DELIVERY_MODULE, "purge")
        scenario["config"].update(
            celery_concurrency="default (one per CPU), prefork", task="send_webhook.delay(url, body): httpx.post"
        )
        return scenario

    def _drain(
        self, name: str, concurrency: int | None, backlog: int, request: HttpRequest, receiver: str, stack: Stack
    ) -> dict[str, Any]:
        """A backlog queued with no worker running, then one `hookpost worker` delivers it."""
        run = start_python(request, self.workdir, mode="count", connections=32, count=backlog)
        fill = self.ui.run_load(f"{name}: queueing {backlog} messages", run, backlog / 1000, stack.check)
        worker = stack.start_worker(concurrency, name="worker")
        try:
            scenario = self._time_drain(name, worker, fill.ok, receiver, f"/{name}")
        finally:
            stack.stop("worker")
        scenario["config"]["celery_concurrency"] = concurrency or "default (one per CPU)"
        return scenario

    def _time_drain(self, name: str, worker: Child, expected: int, receiver: str, path: str) -> dict[str, Any]:
        """Wait while ``worker`` delivers ``expected`` messages; its rate, CPU and memory.

        The rate runs from the first receipt to the last; the CPU is counted from the first
        receipt seen, so the worker's start-up is in neither.
        """
        deadline = time.monotonic() + (30.0 if self.config.quick else 180.0)
        window: CpuWindow | None = None
        counted_from = 0
        rss = 0.0
        with self.ui.step(f"{name}: draining {expected}", total=expected) as update:
            while (received := self._received(receiver, path)) < expected and time.monotonic() < deadline:
                if window is None and received > 0:
                    window, counted_from = CpuWindow(worker.pids()), received
                update(received)
                worker.check()
                time.sleep(0.1)
            rss = sum(rss_mb(pid) for pid in worker.pids())  # before it stops: its working size
        cpu = window.close() if window is not None else None
        first: dict[str, float] = {}
        for webhook_id, arrived in self._receipts(receiver, path):
            first.setdefault(webhook_id, arrived)
        times = sorted(first.values())
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        counted = len(first) - counted_from
        self.ui.log(f"{name}: {rate:,.0f} deliveries/s ({len(first)}/{expected} delivered), RSS {rss:.0f} MB")
        return {
            "name": name,
            "config": {"backlog": expected, "measured": "first to last receipt"},
            "msg_per_s": round(rate, 1),
            "p50_ms": None,
            "p99_ms": None,
            "max_ms": None,
            "delivered": len(first),
            "undelivered": expected - len(first),
            "rss_mb": round(rss, 1),
            "worker_cpu_ms_per_msg": None if cpu is None else _per(cpu["processes_cpu_s"], counted),
            "machine_cpu_ms_per_msg": None if cpu is None else _per(cpu["machine_cpu_s"], counted),
            "machine_busy": None if cpu is None else cpu["machine_busy"],
        }

    def _delivery_ratios(self) -> None:
        limit, naive, drain = self.find("delivery-limit"), self.find("naive-delivery"), self.find("drain")
        if not (limit and naive and drain):
            return
        drain["ratio_to_limit"] = round(drain["msg_per_s"] / limit["msg_per_s"], 3) if limit["msg_per_s"] else None
        drain["ratio_to_naive"] = round(drain["msg_per_s"] / naive["msg_per_s"], 3) if naive["msg_per_s"] else None
        naive["ratio_to_limit"] = round(naive["msg_per_s"] / limit["msg_per_s"], 3) if limit["msg_per_s"] else None
        if drain.get("machine_cpu_ms_per_msg") and limit.get("machine_cpu_ms_per_req"):
            drain["cpu_ratio_to_limit"] = round(drain["machine_cpu_ms_per_msg"] / limit["machine_cpu_ms_per_req"], 2)
        # The same comparison between the delivering processes alone (the worker's, the senders'):
        # unlike the machine's, it holds on a machine that other work keeps busy.
        if drain.get("worker_cpu_ms_per_msg") and limit.get("senders_cpu_ms_per_req"):
            drain["process_cpu_ratio_to_limit"] = round(
                drain["worker_cpu_ms_per_msg"] / limit["senders_cpu_ms_per_req"], 2
            )

    # --- tenants ---------------------------------------------------------------------------

    def tenants_phase(self) -> None:
        """One application's backlog for a fast receiver and another's endpoints that never
        answer, while a third sends steadily to its own fast receiver: the third's latency."""
        cfg = self.config
        stack = Stack(self.env.phase("tenants"), self.env.logs)
        backlog_uid, hanging_uid, steady_uid = "tenants-backlog", "tenants-hanging", "tenants-steady"
        try:
            with self.ui.step(f"tenants: the API, a receiver and {cfg.tenants_hanging} receivers that never answer"):
                api_url = stack.start_api(HOOKPOST_APP, cfg.workers, wait=False)
                receiver = stack.start_receiver()
                hanging = stack.start_hanging(cfg.tenants_hanging)
                stack.wait_api("api")
            hookpost = HookpostClient(api_url, self.env.admin_token)
            hookpost.application_with_endpoint(backlog_uid, receiver + f"/{backlog_uid}")
            hookpost.application_with_endpoint(hanging_uid, hanging[0] + "/hook")
            for index, base in enumerate(hanging[1:], start=1):
                hookpost.add_endpoint(hanging_uid, base + "/hook", f"hanging-{index}")
            hookpost.application_with_endpoint(steady_uid, receiver + f"/{steady_uid}")
            # The backlog is queued with no worker running: it is all due when the worker starts.
            fill = start_python(
                hookpost.message_request(backlog_uid),
                self.workdir,
                mode="count",
                connections=32,
                count=cfg.tenants_backlog,
            )
            backlog = self.ui.run_load(
                f"tenants: queueing {cfg.tenants_backlog} messages", fill, cfg.tenants_backlog / 500, stack.check
            )
            stack.start_worker()
            stack.start_scheduler()
            with self.ui.step("tenants: waiting for the worker's first delivery"):
                deadline = time.monotonic() + 120
                while self._received(receiver, f"/{backlog_uid}") == 0 and time.monotonic() < deadline:
                    stack.check()
                    time.sleep(0.05)
            grace = 2.0 if cfg.quick else 10.0
            runs = [
                start_python(
                    hookpost.message_request(uid),
                    self.workdir,
                    mode="rate",
                    connections=4,
                    duration=cfg.tenants_seconds,
                    rate=rate,
                    grace=grace,
                )
                for uid, rate in ((steady_uid, cfg.tenants_rate), (hanging_uid, cfg.tenants_hanging_rate))
            ]
            self.ui.run_load(
                f"tenants: {cfg.tenants_rate:g} msg/s steady beside the backlog and the hanging endpoints",
                runs[0],
                cfg.tenants_seconds + grace,
                stack.check,
            )
            steady, hanging_load = (run.finish(timeout=30) for run in runs)
            deadline = time.monotonic() + cfg.drain_timeout
            with self.ui.step("tenants: waiting for the steady and the backlog's messages"):
                while time.monotonic() < deadline and (
                    self._received(receiver, f"/{steady_uid}") < steady.ok
                    or self._received(receiver, f"/{backlog_uid}") < backlog.ok
                ):
                    stack.check()
                    time.sleep(0.1)
            first: dict[str, float] = {}
            for webhook_id, arrived in self._receipts(receiver, f"/{steady_uid}"):
                first.setdefault(webhook_id, arrived)
            latencies = [arrived * 1000 - created_ms(webhook_id) for webhook_id, arrived in first.items()]
            backlog_delivered = len({webhook_id for webhook_id, _ in self._receipts(receiver, f"/{backlog_uid}")})
        finally:
            stack.stop()
        scenario: dict[str, Any] = {
            "name": "tenants",
            "config": {
                "backlog": cfg.tenants_backlog,
                "hanging_endpoints": cfg.tenants_hanging,
                "hanging_msg_per_s": cfg.tenants_hanging_rate,
                "steady_msg_per_s": cfg.tenants_rate,
                "seconds": cfg.tenants_seconds,
                "latency": "the steady application's messages: created -> receipt, first attempt",
            },
            "msg_per_s": round(len(first) / max(1e-9, cfg.tenants_seconds), 1),
            "p50_ms": _ms(_percentile(latencies, 0.50)),
            "p99_ms": _ms(_percentile(latencies, 0.99)),
            "max_ms": _ms(max(latencies) if latencies else None),
            "accepted_steady": steady.ok,
            "delivered_steady": len(first),
            "accepted_backlog": backlog.ok,
            "delivered_backlog": backlog_delivered,
            "accepted_hanging": hanging_load.ok,
            "undelivered": steady.ok - len(first) + backlog.ok - backlog_delivered,
        }
        self.ui.log(
            f"tenants: steady p50 {scenario['p50_ms']} ms p99 {scenario['p99_ms']} ms ({len(first)}/{steady.ok}), "
            f"backlog {backlog_delivered}/{backlog.ok} delivered"
        )
        self.add(scenario)
        self.ui.done_step()

    # --- memory ----------------------------------------------------------------------------

    def memory_scenario(self) -> None:
        processes = self.memory.get("processes", [])
        api_workers = [p["rss_mb"] for p in processes if p["process"] == "api worker"]
        api_workers += self.memory.get("api_workers_after_ingest_mb", [])
        celery = [p["rss_mb"] for p in processes if p["process"].startswith("celery")]
        self.add(
            {
                "name": "memory",
                "config": {"measured": "VmRSS and Pss from /proc after the end-to-end runs", "processes": processes},
                "rss_mb": self.memory.get("stack_rss_mb"),
                "pss_mb": self.memory.get("stack_pss_mb"),
                "api_worker_rss_mb": max(api_workers) if api_workers else None,
                "celery_rss_mb": celery,
                "p50_ms": None,
                "p99_ms": None,
                "max_ms": None,
            }
        )

    def run(self, phases: set[str]) -> None:
        self.ui.progress.update(self.ui.overall, total=self.steps(phases))
        if "ingest" in phases:
            self.ingest_phase()
        if "e2e" in phases:
            self.e2e_phase()
            self.memory_scenario()
        if "tenants" in phases:
            self.tenants_phase()

    def steps(self, phases: set[str]) -> int:
        cfg = self.config
        counts = {
            "ingest": 2 + cfg.rounds + 1,
            "e2e": (1 + len(cfg.e2e_rates)) + 1 + 3 + len(cfg.scale_concurrency),
            "tenants": 1,
        }
        return sum(counts[phase] for phase in phases)
