"""Delivery, back to back on one receiver and broker: the delivery limit (one bare httpx client
per core, no bookkeeping), the naive delivery service (a Celery task per message) draining a
backlog, one ``hookpost worker`` with default settings draining one (``drain``), then a worker
of each concurrency."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

from hookpost.bench.base import (
    NAIVE_DELIVERY_MODULE,
    BenchBase,
    HookpostClient,
    delivered_body,
    ms,
    per,
)
from hookpost.bench.loadgen import HttpRequest, LoadResult, LoadRun, start_python
from hookpost.bench.stack import (
    Child,
    CpuWindow,
    Stack,
    rss_mb,
)


class DeliveryPhase(BenchBase):
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
            "p50_ms": ms(statistics.median(load.p50_ms for load in loads)),
            "p99_ms": ms(max(load.p99_ms for load in loads)),
            "max_ms": ms(max(load.max_ms for load in loads)),
            "requests": ok,
            "errors": sum(load.errors for load in loads),
            "senders_cpu_ms_per_req": per(senders_cpu, ok),
            "receiver_cpu_ms_per_req": per(cpu["processes_cpu_s"], ok),
            "machine_cpu_ms_per_req": per(cpu["machine_cpu_s"], ok),
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
        queued = self._queue_backlog(name, backlog, request, stack)
        worker = stack.start_worker(concurrency, name="worker")
        try:
            scenario = self._time_drain(name, worker, queued, receiver, f"/{name}")
        finally:
            stack.stop("worker")
        scenario["config"]["celery_concurrency"] = concurrency or "default (one per CPU)"
        return scenario

    def _queue_backlog(self, name: str, backlog: int, request: HttpRequest, stack: Stack) -> int:
        """Send ``backlog`` messages as fast as the API takes them; how many it accepted."""
        run = start_python(request, self.workdir, mode="count", connections=32, count=backlog)
        return self.ui.run_load(f"{name}: queueing {backlog} messages", run, backlog / 1000, stack.check).ok

    def _time_drain(self, name: str, worker: Child, expected: int, receiver: str, path: str) -> dict[str, Any]:
        """Wait while ``worker`` delivers ``expected`` messages; its rate, CPU and memory.

        The rate runs from the first receipt to the last; the CPU is counted from the first
        receipt seen, so the worker's start-up is in neither. A small backlog can arrive whole
        between two looks (40 messages take 50 ms at 800/s): then the CPU is counted from the
        worker's start, and the row says so.
        """
        deadline = time.monotonic() + (30.0 if self.config.quick else 180.0)
        since_start = CpuWindow(worker.pids())
        window: CpuWindow | None = None
        counted_from = 0
        rss = 0.0
        with self.ui.step(f"{name}: draining {expected}", total=expected) as update:
            while (received := self.received(receiver, path)) < expected and time.monotonic() < deadline:
                if window is None and received > 0:
                    window, counted_from = CpuWindow(worker.pids()), received
                update(received)
                worker.check()
                time.sleep(0.1 if window is not None else 0.01)  # closely until the first receipt
            rss = sum(rss_mb(pid) for pid in worker.pids())  # before it stops: its working size
        cpu_from = "first receipt"
        if window is None:
            window, counted_from, cpu_from = since_start, 0, "worker start (the backlog arrived between two looks)"
        cpu = window.close()
        first = self.receipts(receiver, path).first
        times = sorted(first.values())
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        counted = len(first) - counted_from
        self.ui.log(f"{name}: {rate:,.0f} deliveries/s ({len(first)}/{expected} delivered), RSS {rss:.0f} MB")
        return {
            "name": name,
            "config": {"backlog": expected, "measured": "first to last receipt", "cpu_counted_from": cpu_from},
            "msg_per_s": round(rate, 1),
            "p50_ms": None,
            "p99_ms": None,
            "max_ms": None,
            "delivered": len(first),
            "undelivered": expected - len(first),
            "rss_mb": round(rss, 1),
            "worker_cpu_ms_per_msg": per(cpu["processes_cpu_s"], counted),
            "machine_cpu_ms_per_msg": per(cpu["machine_cpu_s"], counted),
            "machine_busy": cpu["machine_busy"],
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
