"""Phase ``tracing``: what OpenTelemetry tracing costs, as a ratio in one run.

Two whole stacks side by side (API, worker, scheduler, receiver; each its own database), one
with tracing off (the default) and one with it on, exporting OTLP/HTTP to a local receiver that
accepts and discards (``bench.otlp_sink``), every span sampled (the SDK's default sampler, the
dearest case). The two are loaded in turns, round after round, so they share whatever else the
machine is doing: first ingest (closed loop, as the ``ingest`` phase), then end to end at a
fixed offered rate (as the ``e2e`` phase). The ``-on`` scenarios carry their ratios to the
``-off`` ones: throughput, the stack's CPU per message, latency.
"""

from __future__ import annotations

import statistics
import sys
from contextlib import suppress
from typing import Any

import httpx

from hookpost.bench.base import HookpostClient, ms
from hookpost.bench.end_to_end import EndToEndPhase
from hookpost.bench.ingest import IngestPhase
from hookpost.bench.loadgen import LoadResult
from hookpost.bench.stack import HOOKPOST_APP, Child, Stack, free_port, spawn, wait_http

SINK_MODULE = "hookpost.bench.otlp_sink"
MODES = ("off", "on")
STARTUP = 240.0  # seconds a stack's API, then its first delivery, may take to come up on a busy machine


def _ratio(on: float | None, off: float | None) -> float | None:
    return round(on / off, 3) if on is not None and off else None


class TracingPhase(IngestPhase, EndToEndPhase):
    def tracing_phase(self) -> None:
        cfg = self.config
        sink_port = free_port()
        sink_url = f"http://127.0.0.1:{sink_port}"
        stacks: dict[str, Stack] = {}
        sink: Child | None = None
        try:
            off = self.env.phase("tracing-off", HOOKPOST_OTEL_ENABLED="false")
            on = self.env.phase(
                "tracing-on",
                HOOKPOST_OTEL_ENABLED="true",
                OTEL_EXPORTER_OTLP_ENDPOINT=sink_url,
                OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            )
            sink = spawn("otlp-sink", [sys.executable, "-m", SINK_MODULE, str(sink_port)], off.env, self.env.logs)
            stacks = {"off": Stack(off, self.env.logs), "on": Stack(on, self.env.logs)}
            clients: dict[str, HookpostClient] = {}
            receivers: dict[str, str] = {}
            with self.ui.step("starting two stacks, tracing off and on, and an OTLP receiver"):
                wait_http(sink, sink_url + "/_stats")
                # One API after the other, then the rest: a dozen processes importing the app at
                # once on a small, busy machine can take longer than the API's start is given.
                urls = {}
                for mode in MODES:
                    urls[mode] = stacks[mode].start_api(HOOKPOST_APP, cfg.workers, wait=False)
                    stacks[mode].wait_api("api", timeout=STARTUP)
                for mode in MODES:
                    stacks[mode].start_worker()
                    stacks[mode].start_scheduler()
                    receivers[mode] = stacks[mode].start_receiver()
                    clients[mode] = HookpostClient(urls[mode], self.env.admin_token)
                    clients[mode].application_with_endpoint("tracing-ingest", "http://127.0.0.1:9/never")
                    clients[mode].disable_endpoint("tracing-ingest")  # ingest only: nothing to deliver
                for mode in MODES:  # each worker delivering before anything is measured
                    self._one_delivered("tracing-warm-up", stacks[mode], clients[mode], receivers[mode], STARTUP)
            self.ui.done_step()
            self._tracing_ingest(stacks, clients)
            self.ui.done_step()
            self._tracing_delivery(stacks, clients, receivers)
            exported = httpx.get(sink_url + "/_stats", timeout=10).json()
            on_ingest = self.find("tracing-on-ingest")
            if on_ingest is not None:
                on_ingest["config"]["otlp_exports"] = exported["exports"]
                on_ingest["config"]["otlp_bytes"] = exported["bytes"]
            self.ui.log(f"tracing: {exported['exports']} OTLP exports, {exported['bytes']:,} bytes, discarded")
            self.ui.done_step()
        finally:
            for stack in stacks.values():
                stack.stop()
            if sink is not None:
                sink.stop(timeout=2)

    def _tracing_ingest(self, stacks: dict[str, Stack], clients: dict[str, HookpostClient]) -> None:
        cfg = self.config
        results: dict[str, list[tuple[LoadResult, dict[str, float]]]] = {mode: [] for mode in MODES}
        for round_number in range(1, cfg.rounds + 1):
            for mode in MODES:
                request = clients[mode].message_request("tracing-ingest")
                if round_number == 1:
                    self._closed(f"tracing {mode}, ingest: warm-up", request, cfg.warmup_seconds, stacks[mode], "api")
                results[mode].append(
                    self._closed(
                        f"tracing {mode}, ingest: round {round_number}/{cfg.rounds}",
                        request,
                        cfg.closed_seconds,
                        stacks[mode],
                        "api",
                    )
                )
        scenarios = {}
        for mode in MODES:
            scenario = self._closed_scenario(f"tracing-{mode}-ingest", results[mode], "api")
            scenario["config"]["tracing"] = mode
            scenarios[mode] = self.add(scenario)
        on, off = scenarios["on"], scenarios["off"]
        on["tracing_ratios"] = {
            "msg_per_s": _ratio(on["msg_per_s"], off["msg_per_s"]),
            "server_cpu_ms_per_req": _ratio(on["server_cpu_ms_per_req"], off["server_cpu_ms_per_req"]),
            "p50_ms": _ratio(on["p50_ms"], off["p50_ms"]),
            "p99_ms": _ratio(on["p99_ms"], off["p99_ms"]),
        }

    def _tracing_delivery(
        self, stacks: dict[str, Stack], clients: dict[str, HookpostClient], receivers: dict[str, str]
    ) -> None:
        cfg = self.config
        rate, seconds = cfg.tracing_rate, cfg.tracing_seconds
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
        for round_number in range(1, cfg.rounds + 1):
            for mode in MODES:
                name = f"tracing-{mode}-delivery-{round_number}"
                clients[mode].application_with_endpoint(name, receivers[mode] + f"/{name}")
                request = clients[mode].message_request(name)
                runs[mode].append(
                    self._offered(name, rate, seconds, request, receivers[mode], f"/{name}", stacks[mode])
                )
                clients[mode].disable_endpoint(name)
        scenarios = {}
        for mode in MODES:
            made = runs[mode]
            figures = ("msg_per_s", "p50_ms", "p99_ms", "stack_cpu_ms_per_msg", "ingest_p50_ms", "ingest_p99_ms")
            scenario: dict[str, Any] = {
                "name": f"tracing-{mode}-delivery",
                "config": {
                    **made[0]["config"],
                    "tracing": mode,
                    "rounds": len(made),
                    "figures": "median of rounds" if len(made) > 1 else "one run",
                },
                **{key: self._median(run.get(key) for run in made) for key in figures},
                "max_ms": max((run["max_ms"] for run in made if run.get("max_ms") is not None), default=None),
                "offered_msg_per_s": rate,
                "delivered": sum(run["delivered"] for run in made),
                "backlog_after_drain": sum(run["backlog_after_drain"] for run in made),
                "errors": sum(run["errors"] for run in made),
            }
            scenarios[mode] = self.add(scenario)
        on, off = scenarios["on"], scenarios["off"]
        on["tracing_ratios"] = {
            key: _ratio(on[key], off[key]) for key in ("msg_per_s", "stack_cpu_ms_per_msg", "p50_ms", "p99_ms")
        }

    @staticmethod
    def _median(values: Any) -> float | None:
        found = [float(value) for value in values if value is not None]
        with suppress(statistics.StatisticsError):
            return ms(statistics.median(found))
        return None
