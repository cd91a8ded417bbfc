"""Phase ``tenants``: one application's backlog for a fast receiver and another's endpoints
that never answer, while a third sends steadily to its own fast receiver: the third's latency."""

from __future__ import annotations

import time
from typing import Any

from hookpost.bench.base import (
    BenchBase,
    HookpostClient,
    latency_figures,
)
from hookpost.bench.loadgen import start_python
from hookpost.bench.stack import (
    HOOKPOST_APP,
    Stack,
)


class TenantsPhase(BenchBase):
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
                while self.received(receiver, f"/{backlog_uid}") == 0 and time.monotonic() < deadline:
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
                    self.received(receiver, f"/{steady_uid}") < steady.ok
                    or self.received(receiver, f"/{backlog_uid}") < backlog.ok
                ):
                    stack.check()
                    time.sleep(0.1)
            steady_receipts = self.receipts(receiver, f"/{steady_uid}")
            first = steady_receipts.first
            backlog_delivered = len(self.receipts(receiver, f"/{backlog_uid}").first)
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
            **latency_figures(steady_receipts.latencies_ms()),
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
