"""The app runs unchanged under other ASGI servers: Hypercorn and Granian, each started on
the app factory as its own documentation says, on the embedded SQLite database, with a real
Celery worker delivering. The tutorial flow must deliver a signed webhook through each."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from hookpost.settings import Settings
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import upgrade_to_head
from tests.support.processes import celery_worker, free_port, running, wait_until_healthy
from tests.support.receiver import Receiver
from tests.support.tutorial import run_tutorial

STARTUP_DEADLINE = 120.0  # generous: two loaded cores; the health poll returns at once
FACTORY = "hookpost.app:create_app"
BIN = Path(sys.executable).parent


def hypercorn(port: int) -> list[str]:
    # Hypercorn evaluates what follows the colon: a call builds the app.
    return [str(BIN / "hypercorn"), "--bind", f"127.0.0.1:{port}", f"{FACTORY}()"]


def granian(port: int) -> list[str]:
    return [
        *(str(BIN / "granian"), "--interface", "asgi", "--factory"),
        *("--host", "127.0.0.1", "--port", str(port), FACTORY),
    ]


@pytest.mark.parametrize("command", [hypercorn, granian], ids=["hypercorn", "granian"])
def test_a_message_is_delivered_through_the_app_under(
    command: Callable[[int], list[str]], tmp_path: Path, receiver: Receiver
) -> None:
    settings: Settings = make_settings(tmp_path / "data")
    settings.data_dir.mkdir()
    upgrade_to_head(settings)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with running(command(port), settings, command.__name__) as server, celery_worker(settings):
        wait_until_healthy(base_url, server, timeout=STARTUP_DEADLINE)
        with httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30) as api:
            run = run_tutorial(api, receiver)
            assert api.get("/api/v1/app").json()["data"][0]["id"] == run.app_id
        assert server.poll() is None, (settings.data_dir / f"{command.__name__}.log").read_text()
