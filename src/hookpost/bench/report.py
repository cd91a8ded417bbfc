"""The report: targets met or not, the JSON file, the Markdown summary and the PNG chart."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hookpost

Scenario = dict[str, Any]


def _find(scenarios: list[Scenario], name: str) -> Scenario:
    return next((s for s in scenarios if s["name"] == name), {})


def _target(name: str, value: Any, target: str, met: Callable[[Any], bool]) -> dict[str, Any]:
    return {"name": name, "value": value, "target": target, "met": value is not None and bool(met(value))}


def targets(scenarios: list[Scenario]) -> list[dict[str, Any]]:
    """The issue's targets; they are stated for 2 cores with PostgreSQL + Redis."""
    ingest = _find(scenarios, "ingest")
    highest = max(
        (s for s in scenarios if s["name"].startswith("e2e-")),
        key=lambda s: s["config"]["offered_msg_per_s"],
        default={},
    )
    low = next((s for s in scenarios if s["name"].startswith("latency-")), {})
    memory = _find(scenarios, "memory")
    fairness = _find(scenarios, "fairness")
    tenants = _find(scenarios, "tenants")
    drain = _find(scenarios, "drain")
    e2e_500 = _find(scenarios, "e2e-500")
    history = _find(scenarios, "history")
    history_e2e = _find(scenarios, "history-e2e-loaded")
    api_start, worker_start, serve_start = (_find(scenarios, f"startup-{kind}") for kind in ("api", "worker", "serve"))
    past = f"{history.get('config', {}).get('past_messages', 5_000_000):,} past messages"
    offered = highest.get("config", {})
    label = f"{offered.get('offered_msg_per_s', 1000):,.0f} msg/s offered for {offered.get('seconds', 60):g} s"
    return [
        _target("ingest: accepted durable msg/s", ingest.get("msg_per_s"), ">= 5000", lambda v: v >= 5000),
        _target("ingest / naive", ingest.get("ratio_to_naive"), ">= 1.2", lambda v: v >= 1.2),
        _target(
            "ingest: API CPU per accepted message (ms)",
            ingest.get("server_cpu_ms_per_req"),
            "<= 0.35",
            lambda v: v <= 0.35,
        ),
        _target(
            f"ingest p99 at {ingest.get('config', {}).get('connections', 64)} connections (ms)",
            ingest.get("p99_ms"),
            "<= 25",
            lambda v: v <= 25,
        ),
        _target("e2e-500: delivered msg/s in the window", e2e_500.get("msg_per_s"), ">= 495", lambda v: v >= 495),
        _target("e2e-500: first-attempt latency p99 (ms)", e2e_500.get("p99_ms"), "< 1000", lambda v: v < 1000),
        _target(f"{label}: undelivered after the drain", highest.get("backlog_after_drain"), "0", lambda v: v == 0),
        _target(f"{label}: first-attempt latency p99 (ms)", highest.get("p99_ms"), "< 1000", lambda v: v < 1000),
        _target(f"{low.get('name', 'latency-10')}: latency p50 (ms)", low.get("p50_ms"), "< 15", lambda v: v < 15),
        _target(f"{low.get('name', 'latency-10')}: latency p99 (ms)", low.get("p99_ms"), "< 50", lambda v: v < 50),
        _target(
            "fairness: fast endpoint's latency p99 (ms) beside a 5 s one",
            fairness.get("p99_ms"),
            "< 100",
            lambda v: v < 100,
        ),
        _target(
            "tenants: steady application's latency p99 (ms) beside a backlog and hanging endpoints",
            tenants.get("p99_ms"),
            "< 1000",
            lambda v: v < 1000,
        ),
        _target("tenants: undelivered (steady and backlog)", tenants.get("undelivered"), "0", lambda v: v == 0),
        _target(
            "drain (one worker, default settings) / delivery limit",
            drain.get("ratio_to_limit"),
            ">= 0.5",
            lambda v: v >= 0.5,
        ),
        _target("drain / naive delivery", drain.get("ratio_to_naive"), ">= 4", lambda v: v >= 4),
        _target(
            "drain: machine CPU per delivery / the delivery limit's per request",
            drain.get("cpu_ratio_to_limit"),
            "<= 2",
            lambda v: v <= 2,
        ),
        _target(
            f"history: ingest with {past} / on fresh tables", history.get("ingest_ratio"), ">= 0.9", lambda v: v >= 0.9
        ),
        _target(
            f"history: e2e delivered msg/s with {past} / on fresh tables",
            history_e2e.get("loaded_ratios", {}).get("msg_per_s"),
            ">= 0.9",
            lambda v: v >= 0.9,
        ),
        _target(
            f"history: slowest read's p50 (ms) with {past}",
            history.get("slowest_read_p50_ms"),
            "<= 20",
            lambda v: v <= 20,
        ),
        _target(
            "history: messages older than the retention's week after a run (PostgreSQL drops whole weeks)",
            history.get("after_retention", {}).get("older_than_its_week"),
            "0",
            lambda v: v == 0,
        ),
        _target(
            "history: ingest p99 during a retention run / without",
            history.get("retention_p99_ratio"),
            "<= 1.5",
            lambda v: v <= 1.5,
        ),
        _target("delivery worker RSS (MB), all its processes", drain.get("rss_mb"), "<= 240", lambda v: v <= 240),
        _target("API worker RSS (MB), largest", memory.get("api_worker_rss_mb"), "<= 80", lambda v: v <= 80),
        _target("whole stack RSS (MB), sum", memory.get("rss_mb"), "<= 400", lambda v: v <= 400),
        _target(
            "startup: API process (uvicorn, app factory) start -> first answered API request (s)",
            api_start.get("seconds"),
            "<= 1.5",
            lambda v: v <= 1.5,
        ),
        _target(
            "startup: hookpost worker start -> first message delivered (s)",
            worker_start.get("seconds"),
            "<= 2",
            lambda v: v <= 2,
        ),
        _target(
            "startup: hookpost worker's CPU by its first delivery (s)",
            worker_start.get("cpu_s"),
            "<= 2",
            lambda v: v <= 2,
        ),
        _target(
            "startup: hookpost serve (embedded, new data directory) start -> first answered API request (s)",
            serve_start.get("seconds"),
            "<= 6",
            lambda v: v <= 6,
        ),
    ]


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, informational
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=Path(hookpost.__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def build_report(
    scenarios: list[Scenario], config: dict[str, Any], environment: dict[str, str], notes: list[str], started: datetime
) -> dict[str, Any]:
    return {
        "hookpost": hookpost.__version__,
        "commit": _git_commit(),
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "environment": environment,
        "config": config,
        "scenarios": scenarios,
        "targets": targets(scenarios),
        "notes": notes,
    }


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _throughput(scenario: Scenario) -> float | None:
    value = scenario.get("msg_per_s", scenario.get("rps"))
    return None if value is None else float(value)


def _notes(s: Scenario) -> list[str]:
    """The notes column of a scenario's row."""
    notes: list[str] = []
    if "ratio_to_limit" in s:
        notes.append(f"{s['ratio_to_limit']:.2f}x limit")
    if "ratio_to_naive" in s and s["ratio_to_naive"] is not None:
        notes.append(f"{s['ratio_to_naive']:.2f}x naive")
    if "accepted" in s:
        notes.append(f"offered {s['config']['offered_msg_per_s']:g}/s, accepted {s['accepted_msg_per_s']:g}/s")
        notes.append(f"backlog {s['backlog_at_end']} at the end, {s['backlog_after_drain']} after the drain")
        if s.get("duplicates"):
            notes.append(f"{s['duplicates']} duplicates")
    for key, what in (
        ("ratio_to_drain", "{:.2f}x the endpoint drain"),
        ("cpu_ratio_to_limit", "{:.2f}x the limit's machine CPU per request"),
        ("process_cpu_ratio_to_limit", "worker CPU {:.2f}x the limit senders' per request"),
        ("machine_cpu_ms_per_msg", "machine CPU {:.2f} ms/msg"),
        ("machine_cpu_ms_per_req", "machine CPU {:.2f} ms/req"),
        ("worker_cpu_ms_per_msg", "worker CPU {:.2f} ms/msg"),
        ("api_cpu_ms_per_msg", "API CPU {:.2f} ms/msg"),
        ("senders_cpu_ms_per_req", "senders' CPU {:.2f} ms/req"),
    ):
        if s.get(key) is not None:
            notes.append(what.format(s[key]))
    if "server_cpu_ms_per_req" in s:
        notes.append(f"server CPU {s['server_cpu_ms_per_req']:.2f} ms/req")
    if "generator_cpu_share" in s:
        notes.append(f"generator CPU {s['generator_cpu_share']:.0%}")
    if s.get("errors"):
        notes.append(f"{s['errors']} errors")
    if s["name"] == "memory":
        notes.append(f"PSS sum {_fmt(s.get('pss_mb'))} MB, largest API worker {_fmt(s.get('api_worker_rss_mb'))} MB")
    notes += _history_notes(s)
    notes += _tracing_notes(s)
    notes += _startup_notes(s)
    if s.get("config", {}).get("reused"):
        notes.append(f"same run as {s['config']['reused']}")
    return notes


def _history_notes(s: Scenario) -> list[str]:
    """The history phase's: its ratios of the loaded tables to the fresh ones, and the retention run."""
    notes: list[str] = []
    if s["name"] == "history":
        notes.append(f"{s['ingest_ratio']}x fresh ingest; slowest read p50 {_fmt(s['slowest_read_p50_ms'])} ms")
        notes.append(
            f"retention run {s['retention_run_s']} s, ingest p99 {_fmt(s['ingest_during_retention_p99_ms'])} ms"
            f" during it; {s['after_retention']['older_than_retention']} rows older than the retention left"
        )
    if s.get("loaded_ratios"):
        shown = ", ".join(f"{key} {value:.2f}x" for key, value in s["loaded_ratios"].items() if value is not None)
        notes.append(f"with {s['config']['past_messages']:,} past messages / fresh tables: {shown}")
    return notes


def _tracing_notes(s: Scenario) -> list[str]:
    """The tracing phase's: the stack's CPU per message, and the traced run's ratios to the other."""
    notes: list[str] = []
    if s["name"].startswith("tracing-") and s.get("stack_cpu_ms_per_msg") is not None:
        notes.append(f"stack CPU {s['stack_cpu_ms_per_msg']:.2f} ms/msg")
    ratios = s.get("tracing_ratios")
    if ratios:
        shown = ", ".join(f"{key} {value:.2f}x" for key, value in ratios.items() if value is not None)
        notes.append(f"tracing on / off: {shown}")
    return notes


def _startup_notes(s: Scenario) -> list[str]:
    if not s["name"].startswith("startup-"):
        return []
    return [
        f"{_fmt(s['seconds'], 2)} s from start to its first work, {_fmt(s['cpu_s'], 2)} s of CPU by then "
        f"(median of {s['config']['runs']})"
    ]


def markdown(report: dict[str, Any]) -> str:
    m, env, cfg = report["machine"], report["environment"], report["config"]
    lines = [
        f"## hookpost bench{' --quick' if cfg.get('quick') else ''}",
        "",
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, Python {m['python']}; "
        f"database {env['database']}, broker {env['broker']}; load generator {cfg['generator']}; "
        f"{cfg['workers']} API workers; {report['started_at']}.",
        "",
        "| scenario | msg/s (req/s) | p50 ms | p99 ms | max ms | RSS MB | notes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for s in report["scenarios"]:
        notes = _notes(s)
        lines.append(
            f"| {s['name']} | {_fmt(_throughput(s), 0)} | {_fmt(s.get('p50_ms'))} | {_fmt(s.get('p99_ms'))} | "
            f"{_fmt(s.get('max_ms'))} | {_fmt(s.get('rss_mb'))} | {'; '.join(notes)} |"
        )
    lines += ["", "| target | value | wanted | met |", "| --- | ---: | --- | --- |"]
    for t in report["targets"]:
        # A phase this run left out (--only, --quick) measured nothing: not a miss.
        verdict = "yes" if t["met"] else "not measured" if t["value"] is None else "**no**"
        lines.append(f"| {t['name']} | {_fmt(t['value'], 2)} | {t['target']} | {verdict} |")
    if report["notes"]:
        lines += ["", *[f"- {note}" for note in report["notes"]]]
    return "\n".join(lines) + "\n"


def chart(report: dict[str, Any], path: Path) -> bool:
    """Throughput and latency percentiles per scenario, as one PNG; False (and no file) where
    matplotlib, a development dependency, is not installed."""
    try:
        import matplotlib as mpl  # noqa: PLC0415 - only the chart needs it
    except ImportError:
        return False

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    scenarios = [s for s in report["scenarios"] if s["name"] != "memory" and not s["name"].startswith("startup-")]
    names = [s["name"] for s in scenarios]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, max(5.0, 0.42 * len(names) + 2)), sharey=True)
    positions = list(range(len(names)))
    values = [_throughput(s) or 0.0 for s in scenarios]
    colours = [
        "#9e9e9e"
        if n in {"limit", "delivery-limit"}
        else "#f0a030"
        if n in {"naive", "naive-delivery"}
        else "#2e7d32"
        if n.startswith(("e2e", "latency", "history-e2e"))
        else "#1565c0"
        for n in names
    ]
    left.barh(positions, values, color=colours)
    for y, s, v in zip(positions, scenarios, values, strict=True):
        label = f"{v:,.0f}/s"
        if "accepted" in s:
            label += f" (offered {s['config']['offered_msg_per_s']:g})"
        left.text(v, y, " " + label, va="center", fontsize=8)
    left.set_yticks(positions, names)
    left.invert_yaxis()
    left.set_xlabel("throughput: req/s (limit, naive), accepted msg/s (ingest), delivered msg/s (e2e, delivery)")
    left.set_title("Throughput")
    left.margins(x=0.3)
    height = 0.27
    for offset, key, colour in (
        (-height, "p50_ms", "#64b5f6"),
        (0.0, "p99_ms", "#1565c0"),
        (height, "max_ms", "#0d2a5c"),
    ):
        xs = [s.get(key) for s in scenarios]
        ys = [y + offset for y, x in zip(positions, xs, strict=True) if x]
        right.barh(ys, [x for x in xs if x], height=height, color=colour, label=key.removesuffix("_ms"))
    right.set_xscale("log")
    right.set_xlabel("latency, ms (log scale); e2e: message created -> received")
    right.set_title("Latency")
    right.legend(loc="lower right")
    m, env = report["machine"], report["environment"]
    fig.suptitle(
        f"hookpost bench{' --quick' if report['config'].get('quick') else ''}: {env['database']} + {env['broker']}, "
        f"{m['cores']} cores ({m['cpu']}), {report['started_at']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
