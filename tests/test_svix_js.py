"""The official Svix JavaScript client (npm ``svix``, tests/js) against a running Hookpost:
a smoke test of event types, app portal access, the endpoint activity routes and
operational webhook endpoints.

Needs Node.js and ``npm ci`` in tests/js (.ci/run does both); off CI it skips without them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import upgrade_to_head
from tests.support.processes import api_server
from tests.support.receiver import Receiver

JS = Path(__file__).parent / "js"
RUN_DEADLINE = 120.0


def _node() -> str:
    node = shutil.which("node")
    missing = "Node.js" if node is None else "tests/js/node_modules (npm ci --prefix tests/js)"
    if node is None or not (JS / "node_modules" / "svix").is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{missing} missing, and CI=true requires it")
        pytest.skip(f"{missing} missing")
    return node


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = make_settings(tmp_path_factory.mktemp("svix-js"))
    upgrade_to_head(settings)
    with api_server(settings) as url:
        yield url


def test_the_javascript_client_smoke(base_url: str, receiver: Receiver) -> None:
    node = _node()
    env = {**os.environ, "HOOKPOST_URL": base_url, "HOOKPOST_TOKEN": ADMIN_TOKEN, "RECEIVER_URL": receiver.url}

    result = subprocess.run(
        [node, "smoke.mjs"], cwd=JS, env=env, capture_output=True, text=True, timeout=RUN_DEADLINE, check=False
    )

    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "js smoke: ok" in result.stdout
