"""The bench as a whole: each phase in a module of its own (``ingest``, ``end_to_end`` with
``delivery``, ``destinations``, ``tenants``, ``history``, ``tracing``, ``startup``), the figures every phase
shares in ``base``."""

from __future__ import annotations

from hookpost.bench.base import BenchConfig, Ui
from hookpost.bench.destinations import DestinationsPhase
from hookpost.bench.end_to_end import EndToEndPhase
from hookpost.bench.history import HistoryPhase
from hookpost.bench.ingest import IngestPhase
from hookpost.bench.startup import StartupPhase
from hookpost.bench.tenants import TenantsPhase
from hookpost.bench.tracing import TracingPhase

__all__ = ["Bench", "BenchConfig", "Ui"]


class Bench(TracingPhase, IngestPhase, HistoryPhase, EndToEndPhase, DestinationsPhase, TenantsPhase, StartupPhase):
    def run(self, phases: set[str]) -> None:
        self.ui.progress.update(self.ui.overall, total=self.steps(phases))
        if "ingest" in phases:
            self.ingest_phase()
        if "e2e" in phases:
            self.e2e_phase()
            self.memory_scenario()
        if "destinations" in phases:  # after e2e: its rates are set beside that phase's drain
            self.destinations_phase()
        if "tenants" in phases:
            self.tenants_phase()
        if "history" in phases:
            self.history_phase()
        if "tracing" in phases:
            self.tracing_phase()
        if "startup" in phases:
            self.startup_phase()

    def steps(self, phases: set[str]) -> int:
        cfg = self.config
        counts = {
            "ingest": 2 + cfg.rounds + 1,
            "e2e": (1 + len(cfg.e2e_rates)) + 1 + 3 + len(cfg.scale_concurrency),
            "destinations": 3,
            "tenants": 1,
            "history": 3,
            "tracing": 3,
            "startup": 3,
        }
        return sum(counts[phase] for phase in phases)
