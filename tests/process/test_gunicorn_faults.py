"""A real Gunicorn (``hookpost api --workers 2``) serving the real app on PostgreSQL and Redis,
under a bounded load from another process (load.py), while its workers are killed, the
master reloads and the master stops.

Each case prints its figures (run with ``-s`` to see them; docs/deploying.md quotes them).
Readiness is always a poll against a deadline: the master's children in /proc, and the
workers' own "Application startup complete." log lines, which carry their pid.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import redis

from tests.conftest import SECRET_KEY
from tests.process.proc import ProcessId, all_gone, descendants, parent_of
from tests.support.databases import fresh_postgres_database
from tests.support.eventually import eventually
from tests.support.processes import free_port
from tests.support.services import REDIS_URL, require

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

HERE = Path(__file__).parent
REPO = HERE.parents[1]
ADMIN_TOKEN = "test-admin-token-gunicorn-faults-0123456789"
STARTUP_DEADLINE = 120.0  # generous: two cores shared with other suites; a poll returns at once
STOP_DEADLINE = 60.0
LOAD_CONCURRENCY = 8
WARMUP_REQUESTS = 150  # answered before the fault, so the fault lands on a loaded server
AFTER_REQUESTS = 150  # started once the server is whole again
HELD_REQUESTS = LOAD_CONCURRENCY // 2  # in flight inside the app when SIGTERM comes
REDIS_DB = "/13"  # a database of its own: the queued tasks are flushed at the end
STARTED = "Application startup complete."


@dataclass(frozen=True)
class Result:
    start: float
    end: float
    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status == 202


@dataclass
class Load:
    """load.py running against the API; its results as they arrive."""

    process: subprocess.Popen[bytes]
    out: Path
    log: Path

    def results(self) -> list[Result]:
        results = []
        for line in self.out.read_text().splitlines():
            try:
                results.append(Result(**json.loads(line)))
            except (json.JSONDecodeError, TypeError):
                continue  # the line being written right now
        return results

    def wait_for(self, count: int, *, started_after: float = 0.0) -> None:
        def enough() -> bool:
            assert self.process.poll() is None, f"load ended early:\n{self.log.read_text()}"
            return sum(1 for r in self.results() if r.start >= started_after) >= count

        eventually(enough, f"{count} requests answered", timeout=STARTUP_DEADLINE, interval=0.1)

    def stop(self) -> list[Result]:
        """Tell the client to start no more requests; wait for those in flight."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"load did not stop within {STOP_DEADLINE}s") from None
        assert code == 0, self.log.read_text()
        return self.results()


@dataclass
class Gunicorn:
    process: subprocess.Popen[bytes]
    log: Path
    base_url: str
    database_url: str = ""
    app_id: str = ""
    loads: list[Load] = field(default_factory=list)

    @property
    def master(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def listening(self) -> bool:
        """Whether anything still listens on the port (from /proc/net/tcp: no connection made)."""
        port = f":{urlsplit(self.base_url).port:04X}"
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(port) and fields[3] == "0A":  # 0A: LISTEN
                return True
        return False

    def connections_of(self, pid: int) -> int:
        """Established connections to the server's port that process ``pid`` holds (/proc)."""
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
        port = f":{urlsplit(self.base_url).port:04X}"
        count = 0
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(port) and fields[3] == "01" and fields[9] in inodes:  # 01: ESTABLISHED
                count += 1
        return count

    def workers(self) -> set[ProcessId]:
        """The master's live children."""
        return {p for p in descendants(self.master) if parent_of(p) == self.master}

    def started_pids(self) -> set[int]:
        """Workers that have said their app is up (the lifespan ran) and they accept requests."""
        pids = set()
        for line in self.output().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("message") == STARTED:
                    pids.add(entry["pid"])
        return pids

    def assert_running(self) -> None:
        assert self.process.poll() is None, f"Gunicorn exited with {self.process.returncode}:\n{self.output()}"

    def wait_workers_up(self, *, not_among: AbstractSet[ProcessId] = frozenset()) -> set[ProcessId]:
        """Wait until the master has exactly two children, none of ``not_among``, both started."""
        found: set[ProcessId] = set()

        def up() -> bool:
            nonlocal found
            self.assert_running()
            found = self.workers()
            return len(found) == 2 and not found & not_among and {p.pid for p in found} <= self.started_pids()

        try:
            eventually(up, "two fresh workers up", timeout=STARTUP_DEADLINE)
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}\n{self.output()[-3000:]}") from None
        return found

    def start_load(self, tmp_path: Path, *, requests: int = 5000, seconds: float = 120.0) -> Load:
        out, log = tmp_path / "load.jsonl", tmp_path / "load.log"
        argv = [
            sys.executable, str(HERE / "load.py"), self.base_url, ADMIN_TOKEN, self.app_id, str(out),
            "--concurrency", str(LOAD_CONCURRENCY), "--requests", str(requests), "--seconds", str(seconds),
        ]  # fmt: skip
        with log.open("wb") as sink:
            process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
        out.touch()
        self.loads.append(Load(process, out, log))
        return self.loads[-1]


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Gunicorn]:
    """``hookpost api --workers 2`` on a fresh PostgreSQL database and its own Redis database,
    both workers up, and an application with one endpoint, so each message queues a task."""
    broker_url = urlunsplit(urlsplit(require("Redis", REDIS_URL))._replace(path=REDIS_DB))
    redis.Redis.from_url(broker_url).flushdb()
    with fresh_postgres_database() as database_url:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("HOOKPOST_") and key not in {"WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR"}
        }
        env.update(
            HOOKPOST_DATA_DIR=str(tmp_path / "data"),
            HOOKPOST_DATABASE_URL=database_url,
            HOOKPOST_BROKER_URL=broker_url,
            HOOKPOST_ADMIN_TOKEN=ADMIN_TOKEN,
            HOOKPOST_SECRET_KEY=SECRET_KEY,
            HOOKPOST_ALLOWED_NETWORKS="127.0.0.0/8",
            HOOKPOST_LOG_FORMAT="json",
            # Gunicorn's worker timeout also bounds a worker's boot (no heartbeat before it
            # serves), and boots took up to 29 s on the loaded two-core CI machine: at the
            # default 30 s a slow boot would be killed and retried instead of tested.
            HOOKPOST_WEB_TIMEOUT="120",
        )
        subprocess.run(
            [sys.executable, "-m", "hookpost", "migrate"], env=env, check=True, capture_output=True, timeout=120
        )
        port = free_port()
        log = tmp_path / "gunicorn.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "hookpost", "api", "--workers", "2", "--port", str(port)],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Gunicorn(process, log, f"http://127.0.0.1:{port}", database_url)
        try:
            server.wait_workers_up()
            with httpx.Client(
                base_url=server.base_url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
            ) as api:
                app = api.post("/api/v1/app", json={"name": "load"})
                assert app.status_code == 201, app.text
                server.app_id = app.json()["id"]
                # Nothing listens there and no Celery worker runs: the tasks only wait in Redis.
                endpoint = api.post(f"/api/v1/app/{server.app_id}/endpoint", json={"url": "http://127.0.0.1:9/hook"})
                assert endpoint.status_code == 201, endpoint.text
            yield server
        finally:
            for load in server.loads:  # bounded anyway; a failed test need not wait for it
                if load.process.poll() is None:
                    load.process.kill()
                load.process.wait()
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            redis.Redis.from_url(broker_url).flushdb()


def report(case: str, results: list[Result], **figures: object) -> None:
    failed = [r for r in results if not r.ok]
    errors = sorted({r.error or f"HTTP {r.status}" for r in failed})
    slowest = max((r.end - r.start for r in results), default=0.0)
    extra = " ".join(f"{name}={value}" for name, value in figures.items())
    print(
        f"\n[{case}] {len(results)} requests, {len(failed)} failed, slowest {slowest:.2f}s {extra}"
        + (f"\n  errors: {errors}" if errors else ""),
        flush=True,
    )


@pytest.mark.postgres
@pytest.mark.redis
def test_kill_9_of_a_worker_is_replaced_and_only_its_in_flight_requests_fail(
    gunicorn: Gunicorn, tmp_path: Path
) -> None:
    load = gunicorn.start_load(tmp_path)
    load.wait_for(WARMUP_REQUESTS)
    before = gunicorn.workers()
    victim = min(before, key=lambda p: p.pid)
    victim_connections = gunicorn.connections_of(victim.pid)

    killed_at = time.monotonic()
    os.kill(victim.pid, signal.SIGKILL)

    replaced = gunicorn.wait_workers_up(not_among={victim})
    up_at = time.monotonic()
    assert len(replaced - before) == 1, (before, replaced)  # the survivor kept serving
    load.wait_for(AFTER_REQUESTS, started_after=up_at)
    results = load.stop()

    during = [r for r in results if r.start < up_at and r.end > killed_at]
    after = [r for r in results if r.start >= up_at]
    failed = [r for r in results if not r.ok]
    report(
        "kill -9",
        results,
        failed_in_flight=len(failed),
        victim_held=f"{victim_connections}/{LOAD_CONCURRENCY}",
        during_outage=len(during),
        replaced_in=f"{up_at - killed_at:.2f}s",
    )
    assert not [r for r in results if r.end < killed_at and not r.ok], "failures before the kill"
    assert len(after) >= AFTER_REQUESTS
    assert all(r.ok for r in after), [r for r in after if not r.ok]
    # Only the requests in flight on the killed worker's connections can fail.
    assert len(failed) <= victim_connections, failed
    gunicorn.assert_running()


@pytest.mark.postgres
@pytest.mark.redis
def test_sighup_reloads_every_worker_without_failing_a_request(gunicorn: Gunicorn, tmp_path: Path) -> None:
    load = gunicorn.start_load(tmp_path)
    load.wait_for(WARMUP_REQUESTS)
    before = gunicorn.workers()

    hup_at = time.monotonic()
    os.kill(gunicorn.master, signal.SIGHUP)

    gunicorn.wait_workers_up(not_among=before)
    reloaded_at = time.monotonic()
    load.wait_for(AFTER_REQUESTS, started_after=reloaded_at)
    results = load.stop()

    during = [r for r in results if r.start < reloaded_at and r.end > hup_at]
    report("SIGHUP", results, during_reload=len(during), reloaded_in=f"{reloaded_at - hup_at:.2f}s")
    assert during, "no request overlapped the reload"
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    gunicorn.assert_running()


@pytest.mark.postgres
@pytest.mark.redis
def test_sigterm_finishes_every_request_already_sent_then_exits_0(gunicorn: Gunicorn, tmp_path: Path) -> None:
    load = gunicorn.start_load(tmp_path)
    load.wait_for(WARMUP_REQUESTS)
    workers = gunicorn.workers()
    with asyncio.Runner() as runner:
        # New messages wait on a table lock, so requests stay in flight, mid-transaction,
        # for as long as the test holds it: through the start of the workers' shutdown.
        database = runner.run(asyncpg.connect(gunicorn.database_url.replace("+asyncpg", "")))
        runner.run(database.execute("BEGIN; LOCK TABLE message IN EXCLUSIVE MODE"))
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        # One batch at the lock is enough to know it holds: every request the client has in
        # flight from now on stays in flight, mid-transaction, until the lock goes. Not one
        # waiting statement per request: concurrent requests may share a batch (group commit),
        # and do so more on a busy machine, so the count of waiting statements can stay below
        # the count of held requests for good.
        eventually(
            lambda: runner.run(database.fetchval(waiting)) >= 1,
            "a batch of messages waiting on the lock",
            timeout=STARTUP_DEADLINE,
        )

        term_at = time.monotonic()
        os.kill(gunicorn.master, signal.SIGTERM)
        load.process.send_signal(signal.SIGTERM)  # the client starts nothing more

        # The master and every worker have closed the listening socket: the shutdown is on.
        eventually(lambda: not gunicorn.listening(), "the listener to close", timeout=STOP_DEADLINE)
        closed_at = time.monotonic()
        runner.run(database.execute("ROLLBACK"))
        runner.run(database.close())

    try:
        code = gunicorn.process.wait(STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"Gunicorn still running after {STOP_DEADLINE}s:\n{gunicorn.output()}") from None
    results = load.stop()

    sent_before = [r for r in results if r.start < term_at]
    through_shutdown = [r for r in sent_before if r.end > closed_at]
    late = [r for r in results if r.start >= term_at]
    report(
        "SIGTERM",
        sent_before,
        in_flight_through_shutdown=len(through_shutdown),
        started_after_signal=len(late),
        shutdown_took=f"{time.monotonic() - term_at:.2f}s",
    )
    assert code == 0, gunicorn.output()
    assert len(through_shutdown) >= HELD_REQUESTS, through_shutdown
    assert all(r.ok for r in sent_before), [r for r in sent_before if not r.ok]
    eventually(lambda: all_gone(workers), "the workers to exit", timeout=STOP_DEADLINE)


def test_running_workers_serve_on_uvloop_and_httptools(tmp_path: Path) -> None:
    """Asked of the workers themselves: Gunicorn with the real config serves the real app
    wrapped by tests/process/runtime_probe.py, which reports what runs each request."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("HOOKPOST_") and key not in {"WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR"}
    }
    env.update(HOOKPOST_DATA_DIR=str(tmp_path / "data"), HOOKPOST_ADMIN_TOKEN=ADMIN_TOKEN)
    port = free_port()
    log = tmp_path / "gunicorn.log"
    argv = [
        sys.executable, "-m", "gunicorn", "--config", "python:hookpost.process.gunicorn_conf",
        "--bind", f"127.0.0.1:{port}", "--workers", "2", "tests.process.runtime_probe:create_app()",
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv,
            env=env,
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Gunicorn(process, log, f"http://127.0.0.1:{port}")
    answers: dict[int, dict[str, object]] = {}

    def both_workers_answered() -> bool:
        server.assert_running()
        try:  # a new connection each time, so either worker may accept it
            answer = httpx.get(f"{server.base_url}/__runtime__", timeout=10, headers={"connection": "close"})
        except httpx.TransportError:
            return False
        runtime = answer.json()
        answers[runtime["pid"]] = runtime
        return len(answers) == 2

    try:
        eventually(both_workers_answered, "an answer from each of the two workers", timeout=STARTUP_DEADLINE)
        workers = {p.pid for p in server.workers()}
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    assert set(answers) == workers
    for runtime in answers.values():
        assert runtime["loop"] == "uvloop.Loop", runtime
        assert runtime["parser"] == "httptools.parser.parser.HttpRequestParser", runtime
        assert runtime["request_runner"] == "RequestResponseCycle.run_asgi", runtime
        protocol = runtime["protocol"]
        assert isinstance(protocol, list)
        assert protocol[:2] == [
            "hookpost.process.web_worker.DrainingHttpToolsProtocol",
            "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol",
        ], runtime
