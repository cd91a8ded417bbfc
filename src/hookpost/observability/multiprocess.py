"""Where processes that share one ``/metrics`` keep their Prometheus values.

prometheus_client's multiprocess mode: every process writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` and a scrape adds them up. The variable must be set before
prometheus_client is first imported in a process, so it is put into the environment of the
processes before they start (and this module imports nothing of prometheus_client), and
the folder is emptied first: values left by an earlier run would otherwise be added in.

Gunicorn replaces workers (``HOOKPOST_WEB_MAX_REQUESTS``, crashes), and each new pid writes
new files, which every scrape reads. So when a worker exits, its counters and histograms are
added into one ``<kind>_archive.db`` and its files removed (``fold_dead_process``). A lock
file keeps a scrape from seeing that half done: scrapes share it, the fold takes it alone.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
FOLDER = "metrics"
LOCK_FILE = ".lock"  # not *.db: prometheus_client reads every *.db in the folder
_SUMMED_KINDS = ("counter", "histogram", "summary")  # values that add up across processes


def metrics_dir(data_dir: Path, kind: str) -> Path:
    """``<data dir>/metrics/<kind>``: ``serve`` (every process of it), ``api``, ``worker-<pid>``."""
    return data_dir / FOLDER / kind


def prepare(path: Path) -> Path:
    """Create ``path`` empty (removing what an earlier run left) and return it."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def enabled() -> bool:
    return bool(os.environ.get(VARIABLE))


def folder() -> Path | None:
    value = os.environ.get(VARIABLE)
    return Path(value) if value else None


@contextmanager
def locked(path: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold the folder's lock: shared to read the values, exclusive to fold a process in."""
    with (path / LOCK_FILE).open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def fold_dead_process(path: Path, pid: int) -> None:
    """Add the counters and histograms of process ``pid`` (gone) into the archive files and
    delete its own, so the folder does not grow with every replaced worker."""
    from prometheus_client.mmap_dict import MmapedDict  # noqa: PLC0415 - after the env is set

    with locked(path, exclusive=True):
        for kind in _SUMMED_KINDS:
            dead = path / f"{kind}_{pid}.db"
            if not dead.exists():
                continue
            archive = MmapedDict(str(path / f"{kind}_archive.db"))  # type: ignore[no-untyped-call]
            try:
                for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(dead)):  # type: ignore[no-untyped-call]
                    total, _ = archive.read_value(key)  # type: ignore[no-untyped-call]
                    archive.write_value(key, total + value, timestamp)  # type: ignore[no-untyped-call]
            finally:
                archive.close()  # type: ignore[no-untyped-call]
            dead.unlink()


def remove_stale_worker_dirs(data_dir: Path) -> None:
    """Drop ``worker-<pid>`` folders whose worker is gone (killed before it could clean up)."""
    parent = data_dir / FOLDER
    if not parent.is_dir():
        return
    for entry in parent.glob("worker-*"):
        pid = entry.name.removeprefix("worker-")
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
