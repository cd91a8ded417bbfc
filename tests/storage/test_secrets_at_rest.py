"""Endpoint secrets and custom headers are encrypted in the database, readable through the
models, encrypted by the 0003 migration when they were stored in clear, and re-encrypted
under a new key by ``hookpost rotate-key`` while the old key still reads."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from hookpost.app import create_app
from hookpost.kit.ids import new_id
from hookpost.kit.secret_box import PREFIX, UnreadableSecret, new_key
from hookpost.settings import MissingSecretKey, Settings
from hookpost.storage.database import create_engine
from hookpost.storage.migrate import alembic_config, upgrade_to_head
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import fresh_postgres_database
from tests.support.processes import settings_env

SECRET = "whsec_" + "A" * 32
APP_ID = new_id("app")  # an id's shape: a path names an application by id only then
HEADERS = {"Authorization": "Bearer receiver-credential", "X-Plain": "visible"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    with fresh_postgres_database() as url:
        yield url


def _settings(tmp_path: Path, database_url: str | None, **overrides: Any) -> Settings:
    return make_settings(tmp_path, **({"database_url": database_url} if database_url else {}), **overrides)


async def _rows(settings: Settings) -> list[tuple[Any, ...]]:
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text("SELECT secret, previous_secret, headers FROM endpoint"))
            return [tuple(row) for row in result]
    finally:
        await engine.dispose()


def _raw(settings: Settings) -> str:
    return json.dumps(asyncio.run(_rows(settings)), default=str)


def _make_endpoint(settings: Settings) -> tuple[str, str]:
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        app_id = client.post("/api/v1/app", json={"name": "Secrets"}).json()["id"]
        endpoint = client.post(
            f"/api/v1/app/{app_id}/endpoint",
            json={"url": "https://example.com/h", "secret": SECRET, "headers": HEADERS},
        ).json()
        return app_id, endpoint["id"]


def _read_back(settings: Settings, app_id: str, endpoint_id: str) -> tuple[str, dict[str, str]]:
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        base = f"/api/v1/app/{app_id}/endpoint/{endpoint_id}"
        secret = client.get(f"{base}/secret").json()["key"]
        headers = client.get(f"{base}/headers").json()
    return secret, headers


def test_secrets_and_headers_are_stored_encrypted(tmp_path: Path, database_url: str | None) -> None:
    settings = _settings(tmp_path, database_url)
    upgrade_to_head(settings)

    app_id, endpoint_id = _make_endpoint(settings)

    raw = _raw(settings)
    assert PREFIX in raw
    for clear in (SECRET, "receiver-credential", "visible", "Authorization"):
        assert clear not in raw
    secret, headers = _read_back(settings, app_id, endpoint_id)
    assert secret == SECRET
    assert headers["headers"]["X-Plain"] == "visible"


async def _stored_answers(settings: Settings) -> str:
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT body FROM idempotent_response"))
            return json.dumps([row[0] for row in rows], default=str)
    finally:
        await engine.dispose()


def test_a_kept_answer_holding_a_token_is_stored_encrypted(tmp_path: Path, database_url: str | None) -> None:
    """An app portal access answer, kept for its idempotency-key, holds a live token."""
    settings = _settings(tmp_path, database_url)
    upgrade_to_head(settings)
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        app_id = client.post("/api/v1/app", json={"name": "Portal"}).json()["id"]
        keyed = {"idempotency-key": "portal-once"}
        first = client.post(f"/api/v1/auth/app-portal-access/{app_id}", json={}, headers=keyed)
        again = client.post(f"/api/v1/auth/app-portal-access/{app_id}", json={}, headers=keyed)
    assert first.status_code == again.status_code == 200, first.text
    token = first.json()["token"]
    assert again.json()["token"] == token  # the kept answer, read back through the key
    raw = asyncio.run(_stored_answers(settings))
    assert PREFIX in raw
    assert token not in raw


def test_the_migration_encrypts_what_was_stored_in_clear(tmp_path: Path, database_url: str | None) -> None:
    settings = _settings(tmp_path, database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings), "0002")

    async def insert_in_clear() -> None:
        engine = create_async_engine(settings.database_url)
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO application (id, name, metadata, created_at, updated_at) "
                    "VALUES (:app_id, 'Old', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"app_id": APP_ID},
            )
            await connection.execute(
                text("INSERT INTO endpoint (id, app_id, url, description, disabled, metadata, headers, secret, "
                     "previous_secret, created_at, updated_at) VALUES ('ep_1', :app_id, 'https://example.com/h', "
                     "'', false, '{}', :headers, :secret, :previous, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                {"app_id": APP_ID, "headers": json.dumps(HEADERS), "secret": SECRET, "previous": "whsec_" + "B" * 32},
            )  # fmt: skip
        await engine.dispose()

    asyncio.run(insert_in_clear())
    assert SECRET in _raw(settings)

    upgrade_to_head(settings)

    raw = _raw(settings)
    assert SECRET not in raw
    assert "B" * 32 not in raw
    assert "receiver-credential" not in raw
    secret, headers = _read_back(settings, APP_ID, "ep_1")
    assert secret == SECRET
    assert headers["headers"]["X-Plain"] == "visible"
    command.check(alembic_config(settings))  # the models match the migrated schema

    # And back: the downgrade decrypts into the columns as they were.
    command.downgrade(alembic_config(settings), "0002")
    assert SECRET in _raw(settings)
    assert "receiver-credential" in _raw(settings)


def _rotate(settings: Settings) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookpost", "rotate-key"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_rotate_key_re_encrypts_under_the_new_key(tmp_path: Path, database_url: str | None) -> None:
    old = new_key()
    settings = _settings(tmp_path, database_url, secret_key=old)
    upgrade_to_head(settings)
    app_id, endpoint_id = _make_endpoint(settings)
    new = new_key()
    rotating = _settings(tmp_path, database_url, secret_key=f"{new},{old}")

    # Both keys read while the rotation has not run yet.
    assert _read_back(rotating, app_id, endpoint_id)[0] == SECRET
    result = _rotate(rotating)
    assert result.returncode == 0, result.stderr

    # Now the new key alone reads every row, and the old alone reads none.
    for stored in asyncio.run(_rows(settings)):
        for value in stored:
            if value is not None:
                Fernet(new).decrypt(value.removeprefix(PREFIX))
    assert _read_back(_settings(tmp_path, database_url, secret_key=new), app_id, endpoint_id)[0] == SECRET

    async def read_with_old_key() -> None:
        from hookpost.storage.database import create_sessionmaker  # noqa: PLC0415
        from hookpost.storage.models import Endpoint  # noqa: PLC0415

        engine = create_engine(_settings(tmp_path, database_url, secret_key=old))
        try:
            async with create_sessionmaker(engine)() as session:
                await session.get(Endpoint, endpoint_id)
        finally:
            await engine.dispose()

    with pytest.raises(UnreadableSecret):
        asyncio.run(read_with_old_key())


def test_postgres_needs_a_secret_key_the_embedded_default_makes_one(tmp_path: Path) -> None:
    production = Settings(data_dir=tmp_path / "prod", database_url="postgresql+asyncpg://u@127.0.0.1:1/db")
    with pytest.raises(MissingSecretKey):
        production.secret_keys()
    assert not (tmp_path / "prod").exists()

    embedded = Settings(data_dir=tmp_path / "embedded")
    keys = embedded.secret_keys()
    assert keys == embedded.secret_keys()  # made once, then read back
    assert oct(embedded.secret_key_file.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("command_name", ["api", "worker", "scheduler", "migrate"])
def test_production_processes_refuse_to_start_without_a_key(tmp_path: Path, command_name: str) -> None:
    env = settings_env(make_settings(tmp_path, database_url="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"))
    del env["HOOKPOST_SECRET_KEY"]

    result = subprocess.run(
        [sys.executable, "-m", "hookpost", command_name],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1
    assert "HOOKPOST_SECRET_KEY" in result.stderr


def test_rotate_key_on_the_embedded_default_puts_a_new_key_in_front(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, secret_key=None)
    upgrade_to_head(settings)  # makes the data directory's key
    old = settings.secret_key_file.read_text().strip()
    app_id, endpoint_id = _make_endpoint(settings)

    result = _rotate(settings)

    assert result.returncode == 0, result.stderr
    keys = settings.secret_key_file.read_text().strip().split(",")
    assert len(keys) == 2
    assert keys[1] == old
    for stored in asyncio.run(_rows(settings)):
        for value in stored:
            if value is not None:
                Fernet(keys[0]).decrypt(value.removeprefix(PREFIX))
    assert _read_back(settings, app_id, endpoint_id)[0] == SECRET
