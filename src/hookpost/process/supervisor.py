"""Run a few long-lived child processes as one service, and stop them as one.

Each child gets its own session (so its own process group): a terminal's Ctrl-C reaches
only the supervisor, which asks each child to stop with SIGTERM (the graceful-shutdown
signal for both Gunicorn and Celery), waits up to a deadline, then SIGKILLs the child's
whole group, which also removes anything the child forked and left behind. A second stop
signal during that wait kills at once; the same signal again within REPEAT_INTERVAL is the
first one arriving twice and counts once.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DEFAULT_STOP_TIMEOUT = 30.0
# The same stop signal again within this long is the same request arriving twice, not a
# second Ctrl-C: `uv run` without a terminal forwards the SIGINT its process group got to
# its child, which got it from the group too (200 ms apart on a loaded machine).
REPEAT_INTERVAL = 1.0
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass(frozen=True)
class ChildSpec:
    """A child to run: a name for messages, its argv and its environment (None: ours)."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ChildExit:
    name: str
    returncode: int

    def describe(self) -> str:
        if self.returncode < 0:
            try:
                cause = signal.Signals(-self.returncode).name
            except ValueError:
                cause = f"signal {-self.returncode}"
            return f"{self.name} was killed by {cause}"
        return f"{self.name} exited with code {self.returncode}"


@dataclass(frozen=True)
class Outcome:
    """Why supervision ended: a stop signal we were sent, or a child that died on its own."""

    stop_signal: signal.Signals | None
    died: ChildExit | None

    @property
    def exit_code(self) -> int:
        return 0 if self.died is None else 1


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes]
    group_killed: bool = False

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def kill_group(self) -> None:
        """SIGKILL the child's process group: the child if still there, and whatever it forked.

        Done as soon as the child is seen to have exited, before its group id can be reused.
        """
        if not self.group_killed:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.group_killed = True


class Supervisor:
    """Starts children, waits for a stop signal or a death, then stops all of them.

    ``run`` must be called from the main thread: it installs signal handlers.
    """

    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        repeat_interval: float = REPEAT_INTERVAL,
    ) -> None:
        self._specs = list(children)
        self._stop_timeout = stop_timeout
        self._repeat_interval = repeat_interval
        self._children: list[_Child] = []
        self._stop_signals: list[signal.Signals] = []
        self._last_stop_signal_at = 0.0

    def run(self) -> Outcome:
        with _signals_wake(self._on_stop_signal) as wakeup:
            try:
                for spec in self._specs:
                    self._children.append(_Child(spec, _spawn(spec)))
                    log.info("started %s (pid %d)", spec.name, self._children[-1].process.pid)
                return self._wait_for_stop_or_death(wakeup)
            finally:
                self._stop_all(wakeup)

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        received, now = signal.Signals(signum), time.monotonic()
        if (
            self._stop_signals
            and received == self._stop_signals[-1]
            and now - self._last_stop_signal_at < self._repeat_interval
        ):
            return  # the same request delivered twice (see REPEAT_INTERVAL)
        self._stop_signals.append(received)
        self._last_stop_signal_at = now

    def _wait_for_stop_or_death(self, wakeup: socket.socket) -> Outcome:
        while True:
            for child in self._children:
                returncode = child.process.poll()
                if returncode is not None:
                    return Outcome(stop_signal=None, died=ChildExit(child.spec.name, returncode))
            if self._stop_signals:
                log.info("%s received", self._stop_signals[0].name)
                return Outcome(stop_signal=self._stop_signals[0], died=None)
            _wait_for_signal(wakeup, timeout=None)

    def _stop_all(self, wakeup: socket.socket) -> None:
        for child in self._children:
            if child.running:
                log.info("stopping %s", child.spec.name)
                with suppress(ProcessLookupError):
                    child.process.terminate()
        signals_so_far = len(self._stop_signals)
        deadline = time.monotonic() + self._stop_timeout
        while True:
            for child in self._children:
                if not child.running:
                    child.kill_group()
            still_running = ", ".join(child.spec.name for child in self._children if child.running)
            if not still_running:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("not stopped after %.0fs, killing: %s", self._stop_timeout, still_running)
                break
            if len(self._stop_signals) > signals_so_far:
                log.warning("stop signal repeated, killing: %s", still_running)
                break
            _wait_for_signal(wakeup, timeout=remaining)
        for child in self._children:
            child.kill_group()
            child.process.wait()


def _spawn(spec: ChildSpec) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - argv from hookpost.process.commands, no shell
        list(spec.argv),
        env=None if spec.env is None else dict(spec.env),
        start_new_session=True,
        # Safe here: the hook is only used while we have a single thread (checked there).
        preexec_fn=_die_with_parent_hook(),  # noqa: PLW1509
    )


def _die_with_parent_hook() -> Callable[[], None] | None:
    """On Linux, have the kernel SIGTERM a child if the supervisor itself dies (say SIGKILL).

    Without it a supervisor killed by the OOM killer would leave the service running
    unsupervised; with it each child shuts down as if we had stopped it.
    """
    # Code between fork and exec must not need a lock another thread might hold.
    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        return None
    # Loaded before the fork, so the child only makes the call.
    libc = ctypes.CDLL(None, use_errno=True)
    supervisor_pid = os.getpid()

    def set_parent_death_signal() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != supervisor_pid:  # we died between fork and prctl
            os._exit(1)

    return set_parent_death_signal


def _wait_for_signal(wakeup: socket.socket, timeout: float | None) -> None:
    """Block until a signal arrives (its number is written to ``wakeup``) or the timeout."""
    select.select([wakeup], [], [], timeout)
    with suppress(BlockingIOError):
        while wakeup.recv(4096):
            pass


@contextmanager
def _signals_wake(
    on_stop: Callable[[int, FrameType | None], None],
) -> Iterator[socket.socket]:
    """Route stop signals to ``on_stop`` and make every signal, SIGCHLD too, wake a select.

    The self-pipe (``signal.set_wakeup_fd``) closes the race between checking the children
    and going to sleep: a signal in between leaves a byte that wakes the select at once.
    """
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous_wakeup_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    handlers: dict[signal.Signals, Callable[[int, FrameType | None], None]] = dict.fromkeys(STOP_SIGNALS, on_stop)
    handlers[signal.SIGCHLD] = _ignore
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield reader
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        signal.set_wakeup_fd(previous_wakeup_fd)
        reader.close()
        writer.close()


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """A Python-level SIGCHLD handler exists only so the wakeup fd hears about it."""
