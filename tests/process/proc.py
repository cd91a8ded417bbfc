"""What the kernel says about processes (Linux ``/proc``), and a deadline-bound wait.

Processes are identified by pid *and* start time, so a recycled pid is never mistaken
for a survivor.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessId:
    pid: int
    start_time: int


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) of ``pid``, or None once it is gone."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[19])


def _all_pids() -> list[int]:
    return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]


def descendants(root: int) -> set[ProcessId]:
    """Every live process below ``root`` in the process tree."""
    children: dict[int, list[tuple[int, int]]] = {}
    for pid in _all_pids():
        stat = _stat(pid)
        if stat is not None:
            children.setdefault(stat[1], []).append((pid, stat[2]))
    found: set[ProcessId] = set()
    pending = [root]
    while pending:
        for pid, start_time in children.get(pending.pop(), []):
            found.add(ProcessId(pid, start_time))
            pending.append(pid)
    return found


def is_alive(process: ProcessId) -> bool:
    """True while the process runs; a zombie has finished, it only awaits reaping."""
    stat = _stat(process.pid)
    return stat is not None and stat[2] == process.start_time and stat[0] != "Z"


def with_environment(name: str, value: str) -> set[ProcessId]:
    """Live processes started with ``name=value`` in their environment (ours to read)."""
    needle = f"{name}={value}".encode()
    found: set[ProcessId] = set()
    for pid in _all_pids():
        if pid == os.getpid():
            continue
        try:
            environ = (PROC / str(pid) / "environ").read_bytes()
        except OSError:
            continue
        stat = _stat(pid)
        if stat is not None and needle in environ.split(b"\0"):
            process = ProcessId(pid, stat[2])
            if is_alive(process):
                found.add(process)
    return found


def all_gone(processes: Iterable[ProcessId]) -> bool:
    return not any(is_alive(process) for process in processes)


def command_line(process: ProcessId) -> str:
    """The process's argv joined by spaces ("" once it is gone)."""
    try:
        raw = (PROC / str(process.pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def parent_of(process: ProcessId) -> int | None:
    stat = _stat(process.pid)
    return None if stat is None else stat[1]
