"""The README's "Five minutes with curl", run as written: its commands, in order.

The section's first block starts ``hookpost serve`` (through ``uv run``, as a reader does);
``receiver.py`` is saved from its Python block; every other shell block is typed, one after
the other, into one ``sh -eu`` (so a failed command stops the run). Only the ports change:
8000 and 9000 become free ones, so the test shares the machine. Between blocks the test waits
as a reader would: for the receiver to listen, for the webhook to arrive, for the failed
attempt to be recorded. Then it checks what the reader is told to look at.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.eventually import eventually
from tests.support.processes import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DEADLINE = 120.0  # generous: `uv run` and three processes starting on a loaded two-core machine

pytestmark = pytest.mark.skipif(shutil.which("uv") is None or shutil.which("curl") is None, reason="needs uv and curl")


@dataclass(frozen=True)
class Block:
    language: str
    text: str


def tutorial_blocks() -> list[Block]:
    readme = README.read_text(encoding="utf-8")
    section = readme.split("## Five minutes with curl", 1)[1].split("\n## ", 1)[0]
    return [Block(lang, text) for lang, text in re.findall(r"```(\w*)\n(.*?)```", section, flags=re.DOTALL)]


class Shell:
    """One ``sh`` fed block by block on its standard input, as a terminal would."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.log = cwd / "shell.log"
        self._out = self.log.open("wb")
        self.process = subprocess.Popen(
            ["sh", "-eu"], stdin=subprocess.PIPE, stdout=self._out, stderr=subprocess.STDOUT,
            cwd=cwd, env=env, start_new_session=True,
        )  # fmt: skip
        self._blocks = 0

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def run(self, text: str) -> str:
        """Types the block; returns what it printed once its last command finished."""
        self._blocks += 1
        done = f"--- block {self._blocks} done ---"
        before = len(self.output())
        assert self.process.stdin is not None
        self.process.stdin.write(f"{text}\necho '{done}'\n".encode())
        self.process.stdin.flush()
        self.wait_for_output(done)
        return self.output()[before:].split(done)[0]

    def wait_for_output(self, text: str) -> None:
        def seen() -> bool:
            assert self.process.poll() is None, f"the shell stopped ({self.process.returncode}):\n{self.output()}"
            return text in self.output()

        eventually(seen, f"{text!r} printed", timeout=DEADLINE)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)  # the shell and the receiver it started
        self.process.wait(timeout=30)
        self._out.close()


@contextlib.contextmanager
def started(command: str, cwd: Path, env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    with (cwd / "serve.log").open("wb") as out:
        process = subprocess.Popen(
            ["sh", "-c", command], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", process, timeout=DEADLINE)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in its terminal
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_the_readme_tutorial_runs_as_written(tmp_path: Path) -> None:
    api_port, receiver_port = free_port(), free_port()

    def local(text: str) -> str:
        return text.replace("8000", str(api_port)).replace("9000", str(receiver_port))

    serve, *blocks = tutorial_blocks()
    assert serve.language == "sh"
    assert "hookpost serve" in serve.text
    receiver = next(block for block in blocks if block.language == "python")
    commands = [block for block in blocks if block.language == "sh"]
    assert [block.language for block in blocks].count("python") == 1
    assert {block.language for block in blocks} == {"sh", "python"}

    # The reader's own environment: the project found by uv (UV_PROJECT stands for "in the
    # Hookpost folder", so that hookpost-data lands in the test's folder), nothing of the test's.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HOOKPOST_", "WEBHOOK_"))}
    env["UV_PROJECT"] = str(ROOT)
    (tmp_path / "receiver.py").write_text(local(receiver.text))
    serve_command = local(serve.text).replace("hookpost serve", f"hookpost serve --port {api_port}")

    started_at = time.monotonic()
    with started(serve_command, tmp_path, env, api_port):
        token = (tmp_path / "hookpost-data" / "admin-token").read_text().strip()
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{api_port}/api/v1", headers={"authorization": f"Bearer {token}"}, timeout=30
        )
        shell = Shell(tmp_path, env)
        try:
            printed: list[str] = []
            for block in commands:
                printed.append(shell.run(local(block.text)))
                if "receiver.py &" in block.text:
                    shell.wait_for_output("listening on")
                elif "idempotency-key: invoice-42" in block.text and "msg=$(" not in block.text:
                    shell.wait_for_output("verified msg_")
                elif "kill $receiver" in block.text:
                    newest = api.get("/app/acme/msg").json()["data"][0]["id"]
                    eventually(
                        lambda newest=newest: api.get(f"/app/acme/attempt/msg/{newest}").json()["data"] != [],
                        "the failed attempt recorded",
                        timeout=DEADLINE,
                    )
        finally:
            shell.close()
            api.close()
        elapsed = time.monotonic() - started_at

    *_, see_what_happened, _, failure = printed
    assert "REJECTED" not in shell.output()
    assert re.search(r"verified msg_\w+ \{'invoice': 42, 'amount': 1999\}", shell.output())
    assert '"statusText":"success"' in see_what_happened, see_what_happened
    assert '"status":"success"' in see_what_happened or '"status":0' in see_what_happened, see_what_happened
    assert "connection refused" in failure, failure
    assert re.search(r'"nextAttempt":"[^"]+"', failure), failure
    print(f"the tutorial ran in {elapsed:.1f} s")
