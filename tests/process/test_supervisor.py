"""The supervisor, run as its own process with trivial children (see children.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from hookpost.process.supervisor import REPEAT_INTERVAL, ChildExit, ChildSpec, Supervisor
from tests.process.proc import ProcessId, all_gone, descendants, with_environment
from tests.support.eventually import eventually

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

HERE = Path(__file__).parent
CHILDREN = str(HERE / "children.py")
RUN_MARK = "HOOKPOST_TEST_RUN"
DEADLINE = 15.0


def child(name: str, *args: str) -> dict[str, object]:
    return {"name": name, "argv": [sys.executable, CHILDREN, *args]}


@dataclass
class Harness:
    process: subprocess.Popen[bytes]
    output: Path
    run_id: str

    def wait_ready(self, *markers: Path) -> None:
        eventually(
            lambda: all(marker.exists() for marker in markers) or self.process.poll() is not None,
            f"children ready: {[m.name for m in markers]}",
            timeout=DEADLINE,
        )
        assert self.process.poll() is None, self.log()

    def wait_exit(self, timeout: float = DEADLINE) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"supervisor still running after {timeout}s\n{self.log()}") from None

    def log(self) -> str:
        return self.output.read_text()

    def outcome(self) -> dict[str, str | None]:
        last_line = self.log().strip().splitlines()[-1]
        result: dict[str, str | None] = json.loads(last_line)
        return result

    def leftovers(self) -> set[ProcessId]:
        return with_environment(RUN_MARK, self.run_id)


class StartHarness(Protocol):
    def __call__(
        self, *children: dict[str, object], stop_timeout: float = ..., repeat_interval: float = ...
    ) -> Harness: ...


@pytest.fixture
def start(tmp_path: Path) -> Iterator[StartHarness]:
    started: list[Harness] = []

    def start_harness(
        *children: dict[str, object], stop_timeout: float = 10.0, repeat_interval: float = REPEAT_INTERVAL
    ) -> Harness:
        output = tmp_path / f"supervisor-{len(started)}.log"
        run_id = uuid.uuid4().hex
        plan = json.dumps(
            {"stop_timeout": stop_timeout, "repeat_interval": repeat_interval, "children": list(children)}
        )
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, str(HERE / "supervise.py"), plan],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, RUN_MARK: run_id},
            )
        harness = Harness(process, output, run_id)
        started.append(harness)
        return harness

    yield start_harness
    for harness in started:  # never leak processes from a failed test
        for leftover in harness.leftovers():
            os.kill(leftover.pid, signal.SIGKILL)
        harness.process.kill()
        harness.process.wait()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_stops_every_child_and_grandchild(
    start: StartHarness, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    markers = [tmp_path / "sleeper", tmp_path / "forker", tmp_path / "grandchild"]
    harness = start(
        child("sleeper", "sleep", str(markers[0])),
        child("forker", "fork", str(markers[1]), str(markers[2])),
    )
    harness.wait_ready(*markers)
    tree = descendants(harness.process.pid)
    assert len(tree) == 3, tree

    harness.process.send_signal(stop_signal)

    assert harness.wait_exit() == 0, harness.log()
    assert harness.outcome() == {"stop_signal": stop_signal.name, "died": None}
    assert f"{stop_signal.name} received" in harness.log()
    # The grandchild outlived its parent's SIGTERM; only the group kill removes it.
    eventually(lambda: all_gone(tree), "the process tree to be gone", timeout=DEADLINE)
    assert not harness.leftovers()


def test_a_child_that_dies_stops_the_others_and_fails(start: StartHarness, tmp_path: Path) -> None:
    harness = start(
        child("sleeper", "sleep", str(tmp_path / "sleeper")),
        child("crasher", "exit", "3"),
    )

    assert harness.wait_exit() == 1, harness.log()
    assert harness.outcome() == {"stop_signal": None, "died": "crasher exited with code 3"}
    eventually(lambda: not harness.leftovers(), "no process left", timeout=DEADLINE)


def test_a_child_ignoring_sigterm_is_killed_at_the_deadline(start: StartHarness, tmp_path: Path) -> None:
    marker = tmp_path / "stubborn"
    harness = start(child("stubborn", "ignore-term", str(marker)), stop_timeout=1.0)
    harness.wait_ready(marker)

    started = time.monotonic()
    harness.process.send_signal(signal.SIGTERM)

    assert harness.wait_exit() == 0, harness.log()
    assert time.monotonic() - started >= 1.0
    assert "not stopped after 1s, killing: stubborn" in harness.log()
    eventually(lambda: not harness.leftovers(), "no process left", timeout=DEADLINE)


def test_a_second_signal_kills_without_waiting(start: StartHarness, tmp_path: Path) -> None:
    marker = tmp_path / "stubborn"
    harness = start(child("stubborn", "ignore-term", str(marker)), stop_timeout=120.0)
    harness.wait_ready(marker)

    harness.process.send_signal(signal.SIGINT)
    first_sent = time.monotonic()
    eventually(lambda: "stopping stubborn" in harness.log(), "shutdown", timeout=DEADLINE)
    # A person's second Ctrl-C, after the interval within which a repeat is the same one.
    eventually(lambda: time.monotonic() - first_sent > REPEAT_INTERVAL, "the interval", timeout=DEADLINE)
    harness.process.send_signal(signal.SIGINT)

    assert harness.wait_exit(timeout=DEADLINE) == 0, harness.log()
    assert "stop signal repeated, killing: stubborn" in harness.log()
    eventually(lambda: not harness.leftovers(), "no process left", timeout=DEADLINE)


@pytest.mark.parametrize("copies", [2, 3])
def test_one_signal_delivered_again_at_once_stops_gracefully(start: StartHarness, tmp_path: Path, copies: int) -> None:
    """`uv run` without a terminal: the group's SIGINT reaches the supervisor, then uv forwards
    its own copy. The children get their whole grace period, not a kill. (The interval is
    long here so that a loaded machine cannot stretch the test past it.)"""
    marker = tmp_path / "stubborn"
    harness = start(child("stubborn", "ignore-term", str(marker)), stop_timeout=5.0, repeat_interval=60.0)
    harness.wait_ready(marker)

    harness.process.send_signal(signal.SIGINT)
    # Handled before the copy comes: two signals sent at once would merge in the kernel.
    eventually(lambda: "stopping stubborn" in harness.log(), "shutdown", timeout=DEADLINE)
    for _ in range(copies - 1):
        harness.process.send_signal(signal.SIGINT)

    assert harness.wait_exit(timeout=DEADLINE) == 0, harness.log()
    assert "stop signal repeated" not in harness.log()
    assert "not stopped after 5s, killing: stubborn" in harness.log()  # waited the grace period
    eventually(lambda: not harness.leftovers(), "no process left", timeout=DEADLINE)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_children_stop_when_the_supervisor_is_killed(start: StartHarness, tmp_path: Path) -> None:
    marker = tmp_path / "sleeper"
    harness = start(child("sleeper", "sleep", str(marker)))
    harness.wait_ready(marker)
    tree = descendants(harness.process.pid)

    harness.process.kill()  # SIGKILL: no chance to clean up; the kernel signals the child

    harness.wait_exit()
    eventually(lambda: all_gone(tree), "the orphaned child to stop", timeout=DEADLINE)


def test_a_child_that_cannot_start_stops_those_already_started(tmp_path: Path) -> None:
    run_id = uuid.uuid4().hex
    env = {**os.environ, RUN_MARK: run_id}
    supervisor = Supervisor(
        [
            ChildSpec("sleeper", [sys.executable, CHILDREN, "sleep", str(tmp_path / "s")], env),
            ChildSpec("missing", [str(tmp_path / "no-such-program")], env),
        ]
    )
    sigint_handler = signal.getsignal(signal.SIGINT)

    with pytest.raises(FileNotFoundError):
        supervisor.run()

    assert not with_environment(RUN_MARK, run_id)
    assert signal.getsignal(signal.SIGINT) is sigint_handler  # handlers restored


@pytest.mark.parametrize(
    ("returncode", "described"),
    [(0, "api exited with code 0"), (2, "api exited with code 2"), (-9, "api was killed by SIGKILL")],
)
def test_child_exits_are_described_plainly(returncode: int, described: str) -> None:
    assert ChildExit("api", returncode).describe() == described
