from __future__ import annotations

import asyncio
import ipaddress
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hookpost.app import create_app
from hookpost.kit.secret_box import new_key
from hookpost.settings import Settings
from tests.support.databases import fresh_postgres_database, upgrade_to_head
from tests.support.receiver import Receiver

ADMIN_TOKEN = "test-admin-token-" + secrets.token_hex(8)
# One key for every test's settings: processes a test starts get it through the environment.
SECRET_KEY = new_key()


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings for a test: its own data dir, loopback allowed, short retry gaps."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "admin_token": ADMIN_TOKEN,
        "secret_key": SECRET_KEY,
        "allowed_networks": [ipaddress.ip_network("127.0.0.0/8")],
        "retry_schedule": [0, 1, 2],
        "retry_jitter": 0,
        "scheduler_interval": 0.2,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path)
    upgrade_to_head(settings)
    return settings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings_per_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings on a migrated SQLite database, then on a fresh PostgreSQL one."""
    if request.param == "sqlite":
        settings = make_settings(tmp_path)
        upgrade_to_head(settings)
        yield settings
        return
    with fresh_postgres_database() as url:
        settings = make_settings(tmp_path, database_url=url)
        upgrade_to_head(settings)
        yield settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The whole app in memory, on a migrated SQLite database, authenticated."""
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as test_client:
        yield test_client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)
