"""The running API against its own OpenAPI document: every check, stateful sequences too.

Schemathesis generates inputs from the published schema, valid and invalid, and checks
that none gets a 5xx, that invalid ones are refused, valid ones accepted, answers match
the documented responses, and unsupported methods get 405 with the right Allow.

CI runs one fixed seed, 15 examples per operation, on SQLite. The wider run (before a
release; docs/fuzzing.md) is the same command over more seeds, more examples and both
databases, asked for through the environment:

    HOOKPOST_FUZZ_SEEDS=1,2,3,4,5,6 HOOKPOST_FUZZ_MAX_EXAMPLES=60 \
        uv run pytest tests/fuzz/test_schemathesis.py -k wider -s

Each failure is printed with the curl command that reproduces it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookpost.settings import Settings
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import fresh_postgres_database, upgrade_to_head
from tests.support.processes import api_server

CONFIG = Path(__file__).with_name("schemathesis.toml")
# Per operation and phase: enough to find what the issue listed, bounded to about a minute.
MAX_EXAMPLES = 15
SEED = 20261128  # the same cases every run: a failure reproduces

# The wider run: nothing unless seeds are given.
WIDER_SEEDS = [int(seed) for seed in os.environ.get("HOOKPOST_FUZZ_SEEDS", "").split(",") if seed.strip()]
WIDER_MAX_EXAMPLES = int(os.environ.get("HOOKPOST_FUZZ_MAX_EXAMPLES", "60"))
WIDER_DATABASES = os.environ.get("HOOKPOST_FUZZ_DATABASES", "sqlite,postgres").split(",")
# A run of 60 examples takes 70-80 s on an idle machine; the bound is for a hung one.
WIDER_TIMEOUT = int(os.environ.get("HOOKPOST_FUZZ_TIMEOUT", "3600"))


def run_schemathesis(
    settings: Settings, cwd: Path, *, seed: int, max_examples: int, timeout: int
) -> subprocess.CompletedProcess[str]:
    """Schemathesis against the API, started on ``settings``, with every check and phase."""
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert executable, "schemathesis is a dev dependency"
    with api_server(settings) as base_url:
        command = [
            executable, "--config-file", str(CONFIG), "run", f"{base_url}/openapi.json",
            "--header", f"Authorization: Bearer {ADMIN_TOKEN}",
            "--checks", "all",
            # Two stateful checks meet Svix's semantics, not a fault: DELETE of an event type
            # archives it (GET still finds it, archived), and a POST repeated with an earlier
            # idempotency-key and body answers with the first answer, whose resource another
            # step may have deleted since.
            "--exclude-checks", "use_after_free,ensure_resource_availability",
            "--phases", "examples,coverage,fuzzing,stateful",
            "--max-examples", str(max_examples),
            "--seed", str(seed),
            "--generation-database", "none",
            "--request-timeout", "30",
            "--no-color",
        ]  # fmt: skip
        # In the test's directory: schemathesis keeps a cache where it runs.
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)


def test_the_api_passes_every_schemathesis_check(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    upgrade_to_head(settings)
    result = run_schemathesis(settings, tmp_path, seed=SEED, max_examples=MAX_EXAMPLES, timeout=600)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-4000:]
    print(result.stdout[-600:])  # the summary: cases generated, phases, time (with -s)


@pytest.fixture
def database_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Migrated settings on the database the parameter names."""
    if request.param == "sqlite":
        settings = make_settings(tmp_path)
        upgrade_to_head(settings)
        yield settings
        return
    with fresh_postgres_database() as url:
        settings = make_settings(tmp_path, database_url=url)
        upgrade_to_head(settings)
        yield settings


def _summary(output: str) -> str:
    """Schemathesis's closing summary: phases, checks, test cases generated, failures, seed."""
    return output[output.rfind("SUMMARY") :][-3000:].strip()


@pytest.mark.skipif(not WIDER_SEEDS, reason="the wider run: set HOOKPOST_FUZZ_SEEDS (docs/fuzzing.md)")
@pytest.mark.parametrize("seed", WIDER_SEEDS or [0])
@pytest.mark.parametrize(
    "database_settings",
    [pytest.param(name, marks=[pytest.mark.postgres] if name == "postgres" else []) for name in WIDER_DATABASES],
    indirect=True,
)
def test_wider_run_passes_every_schemathesis_check(database_settings: Settings, tmp_path: Path, seed: int) -> None:
    started = time.monotonic()
    result = run_schemathesis(
        database_settings, tmp_path, seed=seed, max_examples=WIDER_MAX_EXAMPLES, timeout=WIDER_TIMEOUT
    )
    elapsed = time.monotonic() - started
    database = "sqlite" if database_settings.is_sqlite else "postgres"
    print(f"\n[{database} seed {seed}, {WIDER_MAX_EXAMPLES} examples: {elapsed:.0f} s]\n{_summary(result.stdout)}")
    # On failure: each failing check with its curl reproduction, then the summary.
    assert result.returncode == 0, result.stdout[-40000:] + result.stderr[-4000:]
