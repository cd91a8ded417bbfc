"""The load generator driver: wrk with a Lua script, or a pure-Python generator.

Three ways to load a server, each run as a child process so that its CPU time can be read
from ``/proc/<pid>/stat`` and reported as a share of the machine:

- ``closed``: C connections, each sending the next request as soon as the last one is
  answered, for a fixed time. wrk when it is installed (its Lua ``done()`` prints the
  summary and latency percentiles as JSON), else the Python generator.
- ``rate``: an open loop at a fixed offered rate for a fixed time (end to end, latency at
  low rate). Latency counts from the moment a request was due, so a slow server cannot hide
  its queueing by slowing the generator down.
- ``count``: closed loop until exactly N requests are answered (filling a backlog).

The Python generator speaks HTTP/1.1 with keep-alive over raw asyncio streams (on uvloop):
it only has to talk to the loopback servers this bench starts, and it costs a fraction of
the CPU a full client would. Run it as ``python -m hookpost.bench.loadgen SPEC.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hookpost.bench.stack import process_cpu_seconds

JSON_MARKER = "HOOKPOST_BENCH_JSON "


@dataclass(frozen=True)
class HttpRequest:
    """One POST, sent over and over."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def raw(self) -> bytes:
        parts = urlsplit(self.url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(self.body)}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass(frozen=True)
class LoadResult:
    generator: str  # "wrk" or "python"
    mode: str  # "closed", "rate" or "count"
    connections: int
    duration_s: float
    requests: int  # answered
    ok: int  # answered with 2xx
    errors: int  # answered with another status, or failed on the socket
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu_s: float  # the generator's own CPU time (user + system)
    offered_rate: float | None = None

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    def cpu_share(self, cores: int | None = None) -> float:
        """The generator's CPU time as a share of the whole machine over the run."""
        cores = cores or os.cpu_count() or 1
        return self.cpu_s / (self.duration_s * cores) if self.duration_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok_per_s": round(self.ok_per_s, 1), "cpu_share": round(self.cpu_share(), 3)}


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _lua_long_string(text: str) -> str:
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def wrk_script(request: HttpRequest) -> str:
    headers = "\n".join(
        f"wrk.headers[ {_lua_long_string(name)} ] = {_lua_long_string(value)}"
        for name, value in request.headers.items()
    )
    return f"""-- written by hookpost bench
wrk.method = "POST"
wrk.body = {_lua_long_string(request.body.decode())}
{headers}

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{JSON_MARKER}{{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


class LoadRun:
    """A generator child process; ``finish()`` waits for it and returns its figures."""

    def __init__(self, argv: list[str], generator: str, workdir: Path, parse: Any) -> None:
        self.generator = generator
        self.started = time.monotonic()
        self._out = workdir / f"{generator}-{time.monotonic_ns()}.out"
        self._parse = parse
        self._cpu_s = 0.0
        with self._out.open("wb") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our argv
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def poll(self) -> int | None:
        """Like ``Popen.poll``, but reads the child's CPU time before reaping it."""
        if self.process.returncode is not None:
            return self.process.returncode
        try:
            info = os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return self.process.poll()
        if info is None:
            return None
        # Exited, not yet reaped: /proc/<pid>/stat still holds its final CPU times.
        self._cpu_s = process_cpu_seconds(self.process.pid)
        return self.process.wait()

    def running(self) -> bool:
        return self.poll() is None

    def stop(self) -> None:
        if self.running():
            self.process.kill()
            self.process.wait()

    def finish(self, timeout: float) -> LoadResult:
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.generator} did not finish in time:\n{self._tail()}")
            time.sleep(0.02)
        for line in self._out.read_text(errors="replace").splitlines():
            if line.startswith(JSON_MARKER):
                result: LoadResult = self._parse(json.loads(line[len(JSON_MARKER) :]), self._cpu_s)
                return result
        raise RuntimeError(f"{self.generator} printed no figures (exit {self.process.returncode}):\n{self._tail()}")

    def _tail(self) -> str:
        return self._out.read_text(errors="replace")[-2000:] if self._out.exists() else ""


def start_wrk(request: HttpRequest, connections: int, duration: float, workdir: Path) -> LoadRun:
    script = workdir / "post.lua"
    script.write_text(wrk_script(request))
    threads = max(1, min(connections, os.cpu_count() or 1))
    wrk = shutil.which("wrk") or "wrk"
    argv = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s", "--timeout", "10s"]
    argv += ["-s", str(script), request.url]

    def parse(raw: dict[str, Any], cpu: float) -> LoadResult:
        errors = raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"]
        return LoadResult(
            generator="wrk",
            mode="closed",
            connections=connections,
            duration_s=raw["duration_us"] / 1e6,
            requests=raw["requests"],
            ok=raw["requests"] - raw["status"],
            errors=errors,
            p50_ms=raw["p50_us"] / 1000,
            p90_ms=raw["p90_us"] / 1000,
            p99_ms=raw["p99_us"] / 1000,
            max_ms=raw["max_us"] / 1000,
            cpu_s=cpu,
        )

    return LoadRun(argv, "wrk", workdir, parse)


def start_python(
    request: HttpRequest,
    workdir: Path,
    *,
    mode: str,
    connections: int,
    duration: float = 0.0,
    rate: float = 0.0,
    count: int = 0,
    grace: float = 10.0,
) -> LoadRun:
    spec = {
        "grace": grace,
        "url": request.url,
        "raw": request.raw().decode(),
        "mode": mode,
        "connections": connections,
        "duration": duration,
        "rate": rate,
        "count": count,
    }
    spec_file = workdir / f"loadgen-{time.monotonic_ns()}.json"
    spec_file.write_text(json.dumps(spec))

    def parse(raw: dict[str, Any], cpu: float) -> LoadResult:
        return LoadResult(**{**raw, "cpu_s": cpu})

    return LoadRun([sys.executable, "-m", "hookpost.bench.loadgen", str(spec_file)], "python", workdir, parse)


def start_closed(request: HttpRequest, connections: int, duration: float, workdir: Path, *, use_wrk: bool) -> LoadRun:
    if use_wrk:
        return start_wrk(request, connections, duration, workdir)
    return start_python(request, workdir, mode="closed", connections=connections, duration=duration)


# --- the pure-Python generator (runs in its own process) ---------------------------------


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def exchange(self, raw: bytes) -> int:
        """Send one request, read the whole answer; its status code."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise RuntimeError("chunked answers are not supported by the bench generator")
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    errors: int = 0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(q * len(values)))]


def latency_figures(latencies: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max in milliseconds of latencies in seconds, sorted."""
    return {
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p90_ms": _percentile(latencies, 0.90) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] * 1000) if latencies else 0.0,
    }


async def _generate(spec: dict[str, Any]) -> dict[str, Any]:  # noqa: PLR0915 - one generator, three modes
    parts = urlsplit(spec["url"])
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    raw: bytes = spec["raw"].encode()
    mode: str = spec["mode"]
    connections: int = spec["connections"]
    tally = _Tally()
    idle: list[_Connection] = []

    async def send_one(due: float) -> None:
        connection = idle.pop() if idle else None
        for attempt in range(2):
            if connection is None:
                connection = await _Connection.open(host, port)
            try:
                status = await connection.exchange(raw)
            except (asyncio.IncompleteReadError, ConnectionError):
                # The server closed an idle keep-alive connection: it never saw this request.
                connection.close()
                connection = None
                if attempt:
                    tally.errors += 1
                    return
                continue
            tally.latencies.append(time.monotonic() - due)
            if 200 <= status < 300:
                tally.ok += 1
            else:
                tally.errors += 1
            idle.append(connection)
            return

    started = time.monotonic()
    if mode in {"closed", "count"}:
        remaining = [spec["count"]]
        deadline = started + spec["duration"]

        async def worker() -> None:
            while True:
                if mode == "count":
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                elif time.monotonic() >= deadline:
                    return
                await send_one(time.monotonic())

        await asyncio.gather(*(worker() for _ in range(connections)))
    else:
        rate: float = spec["rate"]
        total = int(rate * spec["duration"])
        give_up = started + spec["duration"] + spec.get("grace", 10.0)
        # One shared schedule; each connection takes the next due request, waits for its
        # time if early, sends at once if late. Past the grace period the rest are not sent.
        schedule = iter(range(total))

        async def sender() -> None:
            for index in schedule:
                due = started + index / rate
                now = time.monotonic()
                if now > give_up:
                    tally.errors += 1
                    continue
                if due > now:
                    await asyncio.sleep(due - now)
                try:
                    await asyncio.wait_for(send_one(due), timeout=max(0.1, give_up - time.monotonic()))
                except TimeoutError:
                    tally.errors += 1

        await asyncio.gather(*(sender() for _ in range(connections)))
    duration = time.monotonic() - started
    for connection in idle:
        connection.close()
    latencies = sorted(tally.latencies)
    return {
        "generator": "python",
        "mode": mode,
        "connections": connections,
        "duration_s": duration,
        "requests": len(latencies),
        "ok": tally.ok,
        "errors": tally.errors,
        **latency_figures(latencies),
        "offered_rate": spec["rate"] or None,
    }


def run_generator(generate: Callable[[dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]) -> None:
    """A generator process's body: read the spec file named on the command line, run
    ``generate`` on uvloop, print its figures as the one JSON line ``LoadRun`` reads."""
    spec = json.loads(Path(sys.argv[1]).read_text())
    import uvloop  # noqa: PLC0415 - installed with uvicorn[standard]

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(generate(spec))
    sys.stdout.write(JSON_MARKER + json.dumps(result) + "\n")


def main() -> None:
    run_generator(_generate)


if __name__ == "__main__":
    main()
