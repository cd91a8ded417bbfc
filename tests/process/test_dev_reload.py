"""``hookpost dev`` restarts its server when a source file changes.

It watches the directory of the ``hookpost`` package it runs. The test runs it on a copy of
the package (first on PYTHONPATH, so that copy is what is imported and watched), changes
``__version__`` in the copy, and waits for the answer of the running server to change and
for a new server process: the real source tree is never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import hookpost
from hookpost.process.commands import SOURCE_DIR
from tests.support.eventually import eventually
from tests.support.processes import free_port

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

STARTUP_DEADLINE = 120.0  # generous: two loaded cores; a poll returns as soon as it is up
RELOAD_DEADLINE = 120.0
SERVER_STARTED = re.compile(r"Started server process \[(\d+)\]")


def test_dev_restarts_the_server_when_a_source_file_changes(tmp_path: Path) -> None:
    package = tmp_path / "src" / "hookpost"
    shutil.copytree(SOURCE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "cwd").mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("HOOKPOST_")}
    env.update(
        PYTHONPATH=str(package.parent),
        HOOKPOST_DATA_DIR=str(tmp_path / "data"),
        COLUMNS="200",
    )
    port = free_port()
    log = tmp_path / "dev.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "hookpost", "dev", "--port", str(port)],
            env=env,
            cwd=tmp_path / "cwd",
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/openapi.json"

    def version() -> str | None:
        assert process.poll() is None, f"hookpost dev exited with {process.returncode}:\n{log.read_text()}"
        try:
            answer = httpx.get(url, timeout=5)
        except httpx.TransportError:
            return None
        return str(answer.json()["info"]["version"]) if answer.status_code == 200 else None

    try:
        eventually(lambda: version() == hookpost.__version__, f"{url}", timeout=STARTUP_DEADLINE)
        output = log.read_text()
        assert f"Will watch for changes in these directories: ['{package}']" in output, output
        first_server = SERVER_STARTED.findall(output)
        assert len(first_server) == 1, output

        init = package / "__init__.py"
        init.write_text(init.read_text().replace(hookpost.__version__, "9.9.9-reloaded"))

        eventually(lambda: version() == "9.9.9-reloaded", "the reloaded server", timeout=RELOAD_DEADLINE)
        output = log.read_text()
        assert f"WatchFiles detected changes in '{init}'. Reloading..." in output, output
        servers = SERVER_STARTED.findall(output)
        assert len(servers) == 2, output
        assert servers[0] != servers[1], output

        process.send_signal(signal.SIGINT)  # Ctrl-C: the reloader stops its server and exits
        assert process.wait(timeout=60) == 0, log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
