"""``hookpost bench --quick`` on the embedded default: every scenario produces figures.

Only that the bench works end to end is checked here; its figures depend on the machine
and on whatever else runs on it, and no target is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXPECTED = {
    "limit",
    "naive",
    "ingest",
    "latency-10",
    "e2e-100",
    "e2e-1000",
    "fairness-fast-alone",
    "fairness",
    "scale-ingest-1w",
    "scale-ingest-2w",
    "delivery-limit",
    "naive-delivery",
    "drain",
    "scale-delivery-c1",
    "memory",
    "tenants",
    "history",
    "history-e2e-fresh",
    "history-e2e-loaded",
}


# A backlog drained: a rate from first to last receipt, no latency.
DRAINS = {"naive-delivery", "drain", "scale-delivery-c1"}


def test_quick_bench_produces_every_figure(tmp_path: Path) -> None:
    report_path = tmp_path / "r.json"
    env_script = "from hookpost.cli import app; app()"
    completed = subprocess.run(
        [sys.executable, "-c", env_script, "bench", "--quick", "--out", str(report_path)],
        capture_output=True,
        text=True,
        # A hang guard, not the speed target (--quick aims at 2 minutes on a quiet machine);
        # a machine busy with other work can take several times that.
        timeout=900,
        cwd=tmp_path,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-5000:]

    report = json.loads(report_path.read_text())
    scenarios = {scenario["name"]: scenario for scenario in report["scenarios"]}
    assert set(scenarios) == EXPECTED
    for name, scenario in scenarios.items():
        if name == "memory":
            assert scenario["rss_mb"] > 0
            assert scenario["api_worker_rss_mb"] > 0
            continue
        throughput = scenario.get("msg_per_s", scenario.get("rps"))
        assert throughput is not None, name
        if name.startswith("e2e-"):
            # Offered faster than the worker delivers, a short window can end with every
            # delivery still in the backlog: then the figures are what was accepted and left.
            assert scenario["accepted_msg_per_s"] > 0, name
            assert scenario["backlog_at_end"] >= 0, name
            if scenario["delivered"] == 0:
                continue
        assert throughput > 0, name
        if name.startswith(("e2e-", "history-e2e-")) or name == "drain" or name == "naive-delivery":
            assert (scenario["machine_cpu_ms_per_msg"] or 0) > 0, name  # None: no window (names the row)
        if name not in DRAINS:
            assert scenario["p50_ms"] is not None, name
            assert scenario["p99_ms"] is not None, name
            assert scenario["p50_ms"] <= scenario["p99_ms"] <= scenario["max_ms"], name
    # Every message of the steady application and of the backlog arrived beside the hanging endpoints.
    assert scenarios["tenants"]["undelivered"] == 0, scenarios["tenants"]
    # The history phase: every read timed on loaded tables, and nothing past the retention left.
    history = scenarios["history"]
    assert (
        set(history["reads_loaded_p50_ms"])
        == set(history["reads_fresh_p50_ms"])
        == {
            "list",
            "filtered_list",
            "by_id",
            "endpoint_stats",
            "attempt_stats",
            "console_overview",
        }
    )
    assert history["after_retention"]["older_than_retention"] == 0, history
    assert history["retention_removed"]["messages_deleted"] > 0, history  # SQLite deletes row by row
    # End to end on fresh and on loaded tables at one offered rate (each row's figures are checked
    # above), and the loaded run's ratios to the fresh one.
    fresh_e2e, loaded_e2e = scenarios["history-e2e-fresh"], scenarios["history-e2e-loaded"]
    assert fresh_e2e["config"]["offered_msg_per_s"] == loaded_e2e["config"]["offered_msg_per_s"]
    ratios = loaded_e2e["loaded_ratios"]
    assert set(ratios) == {"msg_per_s", "p50_ms", "p99_ms", "stack_cpu_ms_per_msg"}
    assert all(value > 0 for value in ratios.values()), ratios
    assert scenarios["delivery-limit"]["machine_cpu_ms_per_req"] > 0
    assert scenarios["drain"]["rss_mb"] > 0
    # Each delivery target has its figure (met or not is the machine's business).
    for key in ("ratio_to_limit", "ratio_to_naive", "cpu_ratio_to_limit"):
        assert scenarios["drain"][key] > 0, key
    names = {target["name"] for target in report["targets"]}
    # The ingest targets, each reported met or not.
    for wanted in ("ingest / naive", "ingest: API CPU per accepted message (ms)", "API worker RSS (MB), largest"):
        assert wanted in names
    assert any(name.startswith("ingest p99 at 64 connections") for name in names)
    # The history targets, ingest and e2e each as a ratio to fresh tables.
    history_targets = {target["name"]: target for target in report["targets"] if target["name"].startswith("history")}
    for wanted in ("ingest", "e2e delivered msg/s"):
        name = f"history: {wanted} with 3,000 past messages / on fresh tables"
        assert history_targets[name]["value"] > 0, history_targets
    assert all(isinstance(target["met"], bool) for target in report["targets"])
    assert report_path.with_suffix(".png").stat().st_size > 10_000
    summary = report_path.with_suffix(".md").read_text()
    assert summary.startswith("## hookpost bench --quick")
    assert "| history-e2e-loaded |" in summary
    assert "with 3,000 past messages / fresh tables: msg_per_s" in summary
    # --quick leaves the startup phase out: its targets say so rather than "no".
    startup_rows = [line for line in summary.splitlines() if line.startswith("| startup:")]
    assert startup_rows
    assert all(line.endswith("| not measured |") for line in startup_rows), startup_rows
