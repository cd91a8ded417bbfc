"""The startup phase's report rows and targets, without starting processes (the phase itself
runs with ``hookpost bench --only startup``; it is left out of ``--quick``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hookpost.bench.command import PHASES, QUICK_PHASES
from hookpost.bench.report import build_report, markdown


def _started(name: str, seconds: float, cpu_s: float) -> dict[str, Any]:
    return {"name": name, "config": {"runs": 3, "target_s": 0}, "seconds": seconds, "cpu_s": cpu_s, "runs": []}


def test_each_start_is_reported_against_its_target() -> None:
    scenarios = [
        _started("startup-api", 1.2, 1.0),
        _started("startup-worker", 1.8, 2.5),
        _started("startup-serve", 7.0, 9.0),
    ]
    report = build_report(scenarios, {"quick": False, "generator": "python", "workers": 2}, {}, [], datetime.now(UTC))
    met = {t["name"].split(" (")[0]: t["met"] for t in report["targets"] if t["name"].startswith("startup")}
    assert met == {
        "startup: API process": True,
        "startup: hookpost worker start -> first message delivered": True,
        "startup: hookpost worker's CPU by its first delivery": False,
        "startup: hookpost serve": False,
    }
    assert "1.80 s from start to its first work, 2.50 s of CPU by then (median of 3)" in markdown(
        {**report, "environment": {"database": "d", "broker": "b"}}
    )


def test_startup_is_a_phase_of_its_own_outside_quick() -> None:
    assert "startup" in PHASES
    assert "startup" not in QUICK_PHASES
