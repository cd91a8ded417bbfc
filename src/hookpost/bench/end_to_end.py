"""Phase ``e2e``: the whole service as ``hookpost serve`` runs it (API, Celery worker,
scheduler) with a receiver on loopback, at fixed offered rates; fairness between two
endpoints; then delivery (``bench.delivery``) and every process's memory."""

from __future__ import annotations

import time
from typing import Any

import httpx

from hookpost.bench.base import (
    HookpostClient,
    latency_figures,
    ms,
    per,
)
from hookpost.bench.delivery import DeliveryPhase
from hookpost.bench.loadgen import HttpRequest, start_python
from hookpost.bench.stack import (
    HOOKPOST_APP,
    CpuWindow,
    Stack,
    pss_mb,
    rss_mb,
)
from hookpost.process.commands import ServeProcesses, serve_processes


class EndToEndPhase(DeliveryPhase):
    e2e_processes: ServeProcesses  # the API workers and worker concurrency of the e2e runs

    def e2e_phase(self) -> None:
        cfg = self.config
        phase = self.env.phase("e2e")
        stack = Stack(phase, self.env.logs)
        try:
            # As many processes as `hookpost serve` runs on this database (fewer on SQLite).
            self.e2e_processes = serve_processes(phase.settings)
            with self.ui.step("starting the whole service (API, worker, scheduler) and a receiver"):
                api_url = stack.start_api(HOOKPOST_APP, self.e2e_processes.api_workers, wait=False)
                stack.start_worker(self.e2e_processes.worker_concurrency)
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

    def _one_delivered(self, uid: str, stack: Stack, client: HookpostClient, receiver: str, timeout: float) -> None:
        """Until a message to a new application ``uid`` has arrived: the worker is delivering
        (its start is in no measured window). The endpoint is disabled again after it."""
        path = f"/{uid}"
        client.application_with_endpoint(uid, receiver + path)
        request = client.message_request(uid)
        httpx.post(request.url, content=request.body, headers=request.headers, timeout=30).raise_for_status()
        deadline = time.monotonic() + timeout
        while self.received(receiver, path) < 1:
            stack.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{uid}: no message delivered within {timeout:.0f} s of the worker's start")
            time.sleep(0.2)
        client.disable_endpoint(uid)

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
        backlog_at_end = max(0, load.ok - self.received(receiver, path))
        drained_after: float | None = None
        with self.ui.step(f"{name}: waiting for the backlog ({backlog_at_end}) to drain", total=load.ok) as update:
            deadline = time.monotonic() + self.config.drain_timeout
            while True:
                received = self.received(receiver, path)
                update(received)
                if received >= load.ok:
                    drained_after = max(0.0, time.time() - offer_ended)
                    break
                if time.monotonic() > deadline:
                    break
                stack.check()
                time.sleep(0.1)
        receipts = self.receipts(receiver, path)
        first = receipts.first
        in_window = sum(1 for arrived in first.values() if arrived <= offer_ended)
        scenario: dict[str, Any] = {
            "name": name,
            "config": {
                "offered_msg_per_s": rate,
                "seconds": seconds,
                "connections": connections,
                "generator": load.generator,
                "workers": self.e2e_processes.api_workers,
                "celery_concurrency": self.e2e_processes.worker_concurrency or "default (one per CPU)",
                "latency": "message created (time in its id) -> receipt at the endpoint, first attempt",
            },
            "msg_per_s": round(in_window / (offer_ended - started), 1),
            **latency_figures(receipts.latencies_ms()),
            "accepted": load.ok,
            "accepted_msg_per_s": round(load.ok_per_s, 1),
            "ingest_p50_ms": ms(load.p50_ms),
            "ingest_p99_ms": ms(load.p99_ms),
            "errors": load.errors,
            "delivered": len(first),
            "duplicates": receipts.total - len(first),
            "backlog_at_end": backlog_at_end,
            "backlog_after_drain": max(0, load.ok - len(first)),
            "drained_after_s": None if drained_after is None else round(drained_after, 2),
            "generator_cpu_share": round(load.cpu_share(), 3),
            "stack_cpu_share": cpu["processes_share"],
            "machine_busy": cpu["machine_busy"],
            # Everything the machine did while the messages were offered (API, worker, receiver,
            # database, the generator), per message delivered in that window.
            "machine_cpu_ms_per_msg": per(cpu["machine_cpu_s"], in_window),
            "stack_cpu_ms_per_msg": per(cpu["processes_cpu_s"], in_window),
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
        while self.received(receiver, fast_path) < fast_load.ok and time.monotonic() < deadline:
            time.sleep(0.1)
        receipts = self.receipts(receiver, fast_path)
        first = receipts.first
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
            **latency_figures(receipts.latencies_ms()),
            "accepted_fast": fast_load.ok,
            "delivered_fast": len(first),
        }
        note = ""
        if with_slow:
            slow_received = self.received(slow_receiver, "/slow")
            stack.stop("slow-receiver")
            scenario.update(accepted_slow=loads[1].ok, slow_received=slow_received)
            note = f"; the slow one received {slow_received}/{loads[1].ok}"
        self.ui.log(
            f"{name}: fast endpoint p50 {scenario['p50_ms']} ms p99 {scenario['p99_ms']} ms "
            f"({len(first)}/{fast_load.ok} delivered){note}"
        )
        return scenario

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
