"""Stack management: the processes under test, their databases, and what /proc says about them.

Each phase of the bench gets a fresh database (a new PostgreSQL database on the server
given, or a new SQLite file) and an empty broker queue, so what one phase leaves behind
(say, the deliveries of an ingest-only run) never becomes work in the next.

One module for the three layers of that (what /proc says of a process, a child process,
the environment and the stack of a phase): each is small, and they are read together.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import SecretStr

from hookpost.kit.secret_box import new_key
from hookpost.process.commands import GUNICORN_CONFIG, scheduler_argv, worker_argv
from hookpost.settings import Settings

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
# hookpost.delivery.celery_app.QUEUE; not imported, as that module builds a Celery app from
# this process's environment on import.
CELERY_QUEUE = "hookpost"
HOOKPOST_APP = "hookpost.app:create_app()"
# A bench needs no graceful shutdown: what is still queued is of no interest once measured.
STOP_TIMEOUT = 5.0
LIMIT_APP = "hookpost.bench.apps:limit_app"
NAIVE_APP = "hookpost.bench.apps:naive_app()"
NAIVE_DELIVERY_APP = "hookpost.bench.naive_delivery:app"


# --- /proc ---------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) is in parentheses and may hold spaces.
    return raw[raw.rindex(")") + 2 :].split()


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    try:
        fields = _stat_fields(pid)
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return 0.0
    # After the name: state is fields[0]; utime and stime are fields 14 and 15 of the line.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """Resident set size (VmRSS) in MiB; 0 for a process that is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def pss_mb(pid: int) -> float:
    """Proportional set size in MiB: shared pages split among the processes sharing them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0.0


def children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            parent = int(_stat_fields(int(entry.name))[1])
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def descendants(pid: int, tree: dict[int, list[int]] | None = None) -> list[int]:
    tree = children_map() if tree is None else tree
    found: list[int] = []
    todo = list(tree.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(tree.get(child, []))
    return sorted(found)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, already counted in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


@dataclass
class CpuWindow:
    """CPU used over a window by some processes, and by the whole machine."""

    pids: list[int]
    started: float = field(default_factory=time.monotonic)
    _start_cpu: dict[int, float] = field(default_factory=dict)
    _start_machine: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        self._start_cpu = {pid: process_cpu_seconds(pid) for pid in self.pids}
        self._start_machine = machine_cpu()

    def close(self) -> dict[str, float]:
        wall = time.monotonic() - self.started
        cores = os.cpu_count() or 1
        used = sum(max(0.0, process_cpu_seconds(pid) - start) for pid, start in self._start_cpu.items())
        busy, total = machine_cpu()
        machine = (busy - self._start_machine[0]) / max(1e-9, total - self._start_machine[1])
        return {
            "wall_s": round(wall, 2),
            "processes_cpu_s": round(used, 3),
            "machine_cpu_s": round(busy - self._start_machine[0], 3),
            "processes_share": round(used / (wall * cores), 3),
            "machine_busy": round(machine, 3),
        }


# --- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Child:
    """A process of the stack, in its own process group, logging to a file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def pids(self) -> list[int]:
        """The process and everything it forked (Gunicorn workers, Celery's pool)."""
        return [self.pid, *descendants(self.pid)]

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        # Also once it exited: whatever it forked is in its group.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()


def spawn(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Child:
    log = log_dir / f"{name}-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our interpreter and argv
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return Child(name, process, log)


def wait_http(child: Child, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check()
        with suppress(httpx.TransportError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not answer at {url} within {timeout:.0f}s:\n{child.tail()}")


def gunicorn_argv(app: str, port: int, workers: int) -> list[str]:
    """The same Gunicorn, config and worker class ``hookpost api`` runs, for any app."""
    return [
        *(sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONFIG),
        *("--bind", f"127.0.0.1:{port}", "--workers", str(workers), app),
    ]


# --- databases and brokers -------------------------------------------------------------------


def _plain(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def _pg_execute(url: str, statement: str) -> None:
    import asyncpg  # type: ignore[import-untyped]  # noqa: PLC0415

    connection = await asyncpg.connect(_plain(url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def purge_broker(broker_url: str) -> None:
    """Empty Hookpost's queue on a Redis or RabbitMQ broker."""
    from kombu.connection import Connection  # noqa: PLC0415

    connection = Connection(broker_url, connect_timeout=5)  # type: ignore[no-untyped-call]
    with connection, suppress(Exception):
        # RabbitMQ answers 404 (and closes the channel) for a queue that does not exist yet.
        connection.default_channel.queue_purge(CELERY_QUEUE)  # type: ignore[no-untyped-call]


@dataclass
class Phase:
    """One fresh database and broker: the environment every process of a phase gets."""

    name: str
    settings: Settings
    env: dict[str, str]


class Environment:
    """Where the bench keeps its files, and the databases it created (dropped at the end)."""

    def __init__(self, workdir: Path, database_url: str | None, broker_url: str | None, admin_token: str) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.broker_url = broker_url
        self.admin_token = admin_token
        self.secret_key = new_key()  # every process of a phase shares it, as in production
        self.created_databases: list[str] = []
        self.notes: list[str] = []
        self._fresh_databases = True
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url is None or self.database_url.startswith("sqlite")

    def describe(self) -> dict[str, str]:
        from hookpost.kit.urls import redact_url  # noqa: PLC0415

        return {
            "database": "embedded SQLite" if self.database_url is None else redact_url(self.database_url),
            "broker": "embedded filesystem" if self.broker_url is None else redact_url(self.broker_url),
        }

    def phase(self, name: str, **overrides: str) -> Phase:
        data_dir = self.workdir / name
        data_dir.mkdir(parents=True, exist_ok=True)
        database_url = self._database_for(name, data_dir)
        broker_url = self.broker_url or "filesystem://"
        if self.broker_url is not None:
            purge_broker(self.broker_url)
        settings = Settings(
            data_dir=data_dir,
            database_url=database_url,
            broker_url=broker_url,
            admin_token=SecretStr(self.admin_token),
            secret_key=SecretStr(self.secret_key),
        )
        env = {key: value for key, value in os.environ.items() if not key.startswith(("HOOKPOST_", "WEB_CONCURRENCY"))}
        env.update(
            HOOKPOST_DATA_DIR=str(data_dir),
            HOOKPOST_DATABASE_URL=database_url,
            HOOKPOST_BROKER_URL=broker_url,
            HOOKPOST_ADMIN_TOKEN=self.admin_token,
            HOOKPOST_SECRET_KEY=self.secret_key,
            HOOKPOST_ALLOWED_NETWORKS="127.0.0.0/8",
            # Measure the service, not its log: the per-request access log is off (as behind a
            # proxy that logs), and workers are not recycled in the middle of a measurement.
            HOOKPOST_ACCESS_LOG="0",
            HOOKPOST_WEB_MAX_REQUESTS="0",
            HOOKPOST_WEB_GRACEFUL_TIMEOUT="3",
            PYTHONUNBUFFERED="1",
        )
        env.update(overrides)
        from hookpost.storage.migrate import upgrade_to_head  # noqa: PLC0415

        upgrade_to_head(settings)
        return Phase(name, settings, env)

    def _database_for(self, name: str, data_dir: Path) -> str:
        if self.database_url is None:
            return f"sqlite+aiosqlite:///{data_dir / 'hookpost.db'}"
        if self.is_sqlite or not self._fresh_databases:
            return self.database_url
        database = f"hookpost_bench_{secrets.token_hex(4)}_{name.replace('-', '_')}"
        try:
            asyncio.run(_pg_execute(self.database_url, f'CREATE DATABASE "{database}"'))
        except Exception as exc:
            self._fresh_databases = False
            self.notes.append(
                f"could not create a database per phase ({type(exc).__name__}: {exc}); all phases share the "
                "database given, so the rows one phase leaves are still there in the next"
            )
            return self.database_url
        self.created_databases.append(database)
        return _with_database(self.database_url, database)

    def cleanup(self) -> None:
        if self.database_url is not None:
            for database in self.created_databases:
                with suppress(Exception):
                    asyncio.run(_pg_execute(self.database_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        if self.broker_url is not None:
            with suppress(Exception):
                purge_broker(self.broker_url)
        shutil.rmtree(self.workdir, ignore_errors=True)


# --- the processes of a phase ---------------------------------------------------------------


@dataclass
class Stack:
    """The processes running in one phase, stopped together."""

    phase: Phase
    logs: Path
    children: dict[str, Child] = field(default_factory=dict)
    _health: dict[str, tuple[str, int]] = field(default_factory=dict)

    def start_api(self, app: str = HOOKPOST_APP, workers: int = 2, name: str = "api", *, wait: bool = True) -> str:
        """Start Gunicorn serving ``app``; its base URL. Without ``wait``, call ``wait_api`` later."""
        port = free_port()
        # Each server its own metrics folder, as `hookpost api` gives it: three Gunicorns in one
        # data directory would otherwise share (and race to create) the default one.
        metrics = self.logs / f"metrics-{name}-{port}"
        metrics.mkdir(parents=True, exist_ok=True)
        env = {**self.phase.env, "WEB_CONCURRENCY": str(workers), "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
        self.children[name] = spawn(name, gunicorn_argv(app, port, workers), env, self.logs)
        base = f"http://127.0.0.1:{port}"
        self._health[name] = (base + ("/api/v1/health" if app == HOOKPOST_APP else "/health"), workers)
        if wait:
            self.wait_api(name)
        return base

    def wait_api(self, name: str, timeout: float = 60.0) -> None:
        url, workers = self._health[name]
        child = self.children[name]
        wait_http(child, url, timeout)
        self._wait_workers(child, workers)

    def _wait_workers(self, child: Child, workers: int, timeout: float = 30.0) -> None:
        """Until every Gunicorn worker is up (the first to boot answers the health check)."""
        deadline = time.monotonic() + timeout
        while len(descendants(child.pid)) < workers and time.monotonic() < deadline:
            child.check()
            time.sleep(0.1)
        time.sleep(0.5)  # the last worker forked; let it finish importing the app

    def start_worker(self, concurrency: int | None = None, name: str = "worker") -> Child:
        argv = worker_argv(concurrency)  # as `hookpost worker`
        child = self.children[name] = spawn(name, argv, self.phase.env, self.logs)
        return child

    def start_scheduler(self, **overrides: str) -> Child:
        """``hookpost scheduler``, with ``overrides`` of the phase's environment (settings of its own)."""
        env = {**self.phase.env, **overrides}
        child = self.children["scheduler"] = spawn("scheduler", scheduler_argv(), env, self.logs)
        return child

    def start_naive_worker(self) -> Child:
        """The tutorial's Celery worker (``bench.naive_delivery``): prefork, default concurrency."""
        argv = [sys.executable, "-m", "celery", "--quiet", "--app", NAIVE_DELIVERY_APP, "worker"]
        argv += ["--loglevel", "WARNING", "--without-mingle", "--without-gossip"]
        child = self.children["naive-worker"] = spawn("naive-worker", argv, self.phase.env, self.logs)
        return child

    def run_module(self, module: str, *args: str, timeout: float = 120.0) -> None:
        """Run ``python -m module args`` in this phase's environment, to its end."""
        log = self.logs / f"{module.rsplit('.', 1)[-1]}-{time.monotonic_ns()}.log"
        with log.open("wb") as out:
            completed = subprocess.run(  # noqa: S603 - our interpreter and argv
                [sys.executable, "-m", module, *args],
                env=self.phase.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if completed.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{module} {' '.join(args)} exited with {completed.returncode}:\n{tail}")

    def start_receiver(self, name: str = "receiver") -> str:
        port = free_port()
        child = self.children[name] = spawn(
            name, [sys.executable, "-m", "hookpost.bench.receiver", str(port)], self.phase.env, self.logs
        )
        base = f"http://127.0.0.1:{port}"
        wait_http(child, base + "/_stats")
        return base

    def start_hanging(self, count: int, name: str = "hanging") -> list[str]:
        """``count`` receivers that accept a connection and never answer; their base URLs."""
        ports_file = self.phase.settings.data_dir / f"{name}-ports.json"
        child = self.children[name] = spawn(
            name,
            [sys.executable, "-m", "hookpost.bench.hanging", str(count), str(ports_file)],
            self.phase.env,
            self.logs,
        )
        deadline = time.monotonic() + 30
        while not ports_file.exists():
            child.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: no ports after 30 s:\n{child.tail()}")
            time.sleep(0.05)
        return [f"http://127.0.0.1:{port}" for port in json.loads(ports_file.read_text())]

    def stop(self, *names: str, timeout: float = STOP_TIMEOUT) -> None:
        """Stop these children (all by default) together: SIGTERM to each, then wait for all;
        whatever is left after ``timeout`` is killed."""
        stopping = [self.children.pop(name) for name in names or list(self.children) if name in self.children]
        for child in stopping:
            with suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in stopping:
            child.stop(timeout=max(0.1, deadline - time.monotonic()))

    def purge_queue(self) -> None:
        """Drop every task waiting in the broker (what an earlier run left undelivered)."""
        settings = self.phase.settings
        if settings.broker_url.startswith("filesystem"):
            for message in (settings.broker_dir / "queue").glob("*.msg"):
                message.unlink(missing_ok=True)
        else:
            purge_broker(settings.broker_url)

    def pids(self, *names: str) -> list[int]:
        return [
            pid for name in names or list(self.children) if name in self.children for pid in self.children[name].pids()
        ]

    def check(self) -> None:
        for child in self.children.values():
            child.check()

    def __iter__(self) -> Iterator[Child]:
        return iter(list(self.children.values()))
