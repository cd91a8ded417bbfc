"""Phase ``ingest``: the limit app, the naive service and Hookpost's API side by side (same
Gunicorn config and worker count), loaded in turns, round after round, so they share whatever
else the machine is doing; then Hookpost alone with 1, 2 and 4 workers."""

from __future__ import annotations

import statistics
from typing import Any

from hookpost.bench.apps import create_naive_table
from hookpost.bench.base import (
    PAYLOAD_BYTES,
    BenchBase,
    HookpostClient,
    message_body,
    ms,
)
from hookpost.bench.loadgen import HttpRequest, LoadResult
from hookpost.bench.stack import (
    HOOKPOST_APP,
    LIMIT_APP,
    NAIVE_APP,
    Stack,
    rss_mb,
)


class IngestPhase(BenchBase):
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
            "p50_ms": ms(statistics.median(load.p50_ms for load in loads)),
            "p99_ms": ms(statistics.median(load.p99_ms for load in loads)),
            "max_ms": ms(max(load.max_ms for load in loads)),
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
