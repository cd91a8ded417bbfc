"""Every process tries its HOOKPOST_SECRET_KEY on the stored secrets at start: it refuses to
start, in one line saying which key and what to do, when the key opens none of them, and
warns when it opens only some. Real processes, on a SQLite database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hookpost.app import create_app
from hookpost.kit.secret_box import new_key
from hookpost.settings import Settings
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import upgrade_to_head
from tests.support.eventually import eventually
from tests.support.processes import free_port, running, settings_env

START_DEADLINE = 120.0


def _store_endpoints(settings: Settings, count: int) -> None:
    """Endpoints whose secrets are encrypted under ``settings``' key."""
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        app_id = client.post("/api/v1/app", json={"name": "keys"}).json()["id"]
        for n in range(count):
            made = client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": f"https://example.com/{n}"})
            assert made.status_code == 201, made.text


@pytest.fixture
def stored_under_another_key(tmp_path: Path) -> Settings:
    """A database whose two endpoints' secrets were stored under a key, and settings with another."""
    stored_with = make_settings(tmp_path, secret_key=new_key())
    upgrade_to_head(stored_with)
    _store_endpoints(stored_with, 2)
    return make_settings(tmp_path, secret_key=new_key())


@pytest.mark.parametrize("command", ["api", "worker", "scheduler", "serve"])
def test_a_key_that_opens_no_stored_secret_refuses_to_start(stored_under_another_key: Settings, command: str) -> None:
    args = [sys.executable, "-m", "hookpost", command, *(["--port", str(free_port())] if command == "serve" else [])]

    result = subprocess.run(
        args, env=settings_env(stored_under_another_key), capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (refusal,) = [line for line in result.stderr.splitlines() if "opens none" in line]
    assert refusal.startswith("hookpost: HOOKPOST_SECRET_KEY (1 key, the first's fingerprint ")
    assert "opens none of the 2 newest endpoint secrets stored" in refusal
    assert "HOOKPOST_SECRET_KEY=new,old" in refusal  # what to do


def test_a_key_that_opens_some_stored_secrets_starts_with_a_warning(stored_under_another_key: Settings) -> None:
    settings = stored_under_another_key
    _store_endpoints(settings, 1)  # one under the key the process has

    with running([sys.executable, "-m", "hookpost", "scheduler"], settings, "scheduler") as scheduler:
        log = settings.data_dir / "scheduler.log"
        eventually(lambda: "opens 1 of the 3" in log.read_text(), "the warning", timeout=START_DEADLINE)
        assert scheduler.poll() is None, log.read_text()
    assert "hookpost: warning: HOOKPOST_SECRET_KEY (1 key" in log.read_text()
