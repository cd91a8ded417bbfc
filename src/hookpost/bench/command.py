"""The ``hookpost bench`` command."""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from hookpost.bench.scenarios import Bench
    from hookpost.bench.stack import Environment

PHASES = ("ingest", "e2e", "destinations", "tenants", "history", "tracing", "startup")
# Their own stacks would add to --quick some 30 s (destinations: API, two workers one after the
# other, scheduler) or minutes on a busy machine (tracing: two whole stacks loaded in turns;
# startup: a dozen processes started one by one): chosen with --only, not by default.
QUICK_PHASES = tuple(phase for phase in PHASES if phase not in {"destinations", "tracing", "startup"})


def _write(report: dict[str, Any], out: Path) -> None:
    """The JSON report, and its Markdown summary beside it."""
    from hookpost.bench.report import markdown  # noqa: PLC0415

    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))


def _keep_what_failed(
    env: Environment, run: Bench | None, out: Path | None, settings: dict[str, Any], started: datetime, console: Console
) -> None:
    """A failed run's process logs, and what the phases before the failure measured (a full
    run takes most of an hour)."""
    from hookpost.bench.report import build_report  # noqa: PLC0415

    kept = Path(tempfile.gettempdir()) / f"hookpost-bench-logs-{started:%Y%m%dT%H%M%S}"
    shutil.copytree(env.logs, kept, dirs_exist_ok=True)
    console.print(f"hookpost bench failed; the processes' logs are in {kept}", style="bold red")
    if run is not None and run.scenarios and out is not None:
        partial = out.with_name(f"{out.stem}-partial.json")
        _write(build_report(run.scenarios, settings, env.describe(), env.notes, started), partial)
        console.print(f"What was measured before it: {partial}", style="bold red")


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="A short run (under 2 minutes) that checks every scenario.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Write the JSON report here (and a .md summary beside it).")] = None,
    chart_path: Annotated[
        Path | None,
        typer.Option("--chart", show_default="the report's name with .png, else bench.png", help="The PNG chart."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            show_default="embedded SQLite in a temporary directory",
            help="postgresql+asyncpg://... : each phase gets a new database on that server, dropped at the end.",
        ),
    ] = None,
    broker_url: Annotated[
        str | None,
        typer.Option(
            show_default="embedded filesystem broker",
            help="redis://... or amqp://... ; its 'hookpost' queue is purged, so use one nothing else needs.",
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="API worker processes (all three servers).")] = 2,
    generator: Annotated[
        str, typer.Option(help="Closed-loop load generator: auto (wrk if installed), wrk or python.")
    ] = "auto",
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only these phases (ingest, e2e, destinations, tenants, history, tracing, startup; repeat "
            "the option); default all (with --quick, all but destinations, tracing and startup)."
        ),
    ] = None,
) -> None:
    """Measure Hookpost against the physical limit and a naive service, on loopback, in one run.

    Scenarios: limit (bare ASGI app), naive (FastAPI + one INSERT), ingest, end to end at
    fixed offered rates, scaling (API workers, Celery concurrency), tenants (one application's
    backlog and hanging endpoints beside another's steady traffic), history (end to end, ingest and
    reads on fresh tables against N past messages, and a retention run), destinations (a FIFO
    destination's and a poller's rates beside the endpoint drain's), memory, and startup (each
    kind of process from its start to its first answered request or delivered message). Prints a
    Markdown summary with each target met or not.
    """
    # Imported here: the bench pulls in FastAPI, matplotlib and the rest, which every other
    # hookpost command (a liveness probe among them) would otherwise pay for at start.
    from rich.markdown import Markdown  # noqa: PLC0415

    from hookpost.bench.loadgen import wrk_available  # noqa: PLC0415
    from hookpost.bench.report import build_report, chart, markdown  # noqa: PLC0415
    from hookpost.bench.scenarios import Bench, BenchConfig, Ui  # noqa: PLC0415
    from hookpost.bench.stack import Environment  # noqa: PLC0415

    console = Console(highlight=False)
    progress_console = Console(stderr=True, highlight=False)
    if generator not in {"auto", "wrk", "python"}:
        raise typer.BadParameter("auto, wrk or python", param_hint="--generator")
    if generator == "wrk" and not wrk_available():
        raise typer.BadParameter("wrk is not installed (apt-get install wrk)", param_hint="--generator")
    phases = set(only or (QUICK_PHASES if quick else PHASES))
    if not phases <= set(PHASES):
        raise typer.BadParameter(", ".join(PHASES), param_hint="--only")
    use_wrk = generator == "wrk" or (generator == "auto" and wrk_available())
    config = BenchConfig.make(quick=quick, workers=workers, use_wrk=use_wrk)
    workdir = Path(tempfile.mkdtemp(prefix="hookpost-bench-"))
    env = Environment(workdir, database_url, broker_url, admin_token="hp_bench_" + secrets.token_urlsafe(24))
    started = datetime.now(UTC)
    failed = True
    # The stack's processes run in sessions of their own; a SIGTERM (or SIGHUP) must unwind
    # through the cleanup below like Ctrl-C does, or they would outlive the bench.
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _exit_on_signal)
    settings = {**asdict(config), "generator": f"wrk ({shutil.which('wrk')})" if use_wrk else "python"}
    run: Bench | None = None
    try:
        with Ui(progress_console, steps=0) as ui:
            run = Bench(config, env, ui)
            run.run(phases)
        failed = False
    finally:
        if failed:
            _keep_what_failed(env, run, out, settings, started, progress_console)
        env.cleanup()

    assert run is not None  # set before any phase ran, or the run failed above
    report = build_report(run.scenarios, settings, env.describe(), env.notes, started)
    summary = markdown(report)
    console.print(Markdown(summary))
    if out is not None:
        _write(report, out)
        console.print(f"Report: {out}")
    png = chart_path or (out.with_suffix(".png") if out is not None else Path("bench.png"))
    if chart(report, png):
        console.print(f"Chart: {png}")
    else:
        console.print("No chart: matplotlib is not installed (it comes with the development dependencies)")
