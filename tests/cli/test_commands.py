"""The ``hookpost`` command line and the process settings it hands to Gunicorn and Celery."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hookpost.kit.urls import redact_url
from hookpost.process.commands import ServeProcesses, api_argv, host_port, serve_processes
from hookpost.process.web_worker import WebWorker
from hookpost.settings import Settings

COMMANDS = [
    *("serve", "api", "worker", "scheduler", "dev", "migrate"),
    *("self-signed-certificate", "rotate-key", "worker-health", "bench"),
]


def hookpost(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookpost", *args],
        env=env,
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Our environment without any HOOKPOST_* setting, and a fresh data directory."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOOKPOST_")}
    clean.update(HOOKPOST_DATA_DIR=str(tmp_path / "data"), COLUMNS="200")
    return clean


def test_help_lists_every_command(env: dict[str, str]) -> None:
    result = hookpost("--help", env=env)

    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert f" {command} " in result.stdout, command
    assert "--version" in result.stdout
    assert "<bool>" not in result.stdout  # a flag takes no value, so it shows no type


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(env: dict[str, str], command: str) -> None:
    result = hookpost(command, "--help", env=env)

    assert result.returncode == 0, result.stderr
    assert f"Usage: hookpost {command}" in result.stdout
    assert "--help" in result.stdout
    assert "<bool>" not in result.stdout  # a flag takes no value, so it shows no type


def test_api_refuses_to_start_without_an_admin_token(env: dict[str, str], tmp_path: Path) -> None:
    result = hookpost("api", env=env)

    assert result.returncode == 1
    assert "no admin token is configured" in result.stderr
    assert "HOOKPOST_ADMIN_TOKEN" in result.stderr
    assert str(tmp_path / "data" / "admin-token") in result.stderr
    assert "Gunicorn" not in result.stdout + result.stderr


def test_invalid_settings_are_reported_not_raised(env: dict[str, str]) -> None:
    result = hookpost("api", env={**env, "HOOKPOST_ADMIN_TOKEN": "short"}, cwd=None)

    assert result.returncode == 2
    assert "invalid configuration" in result.stderr
    assert "admin_token" in result.stderr
    assert "Traceback" not in result.stderr


def test_api_takes_bind_or_host_and_port_not_both(env: dict[str, str]) -> None:
    token = {"HOOKPOST_ADMIN_TOKEN": "t" * 32}
    result = hookpost("api", "--bind", "unix:/tmp/x.sock", "--port", "9", env={**env, **token})

    assert result.returncode == 2
    assert "either --bind or --host/--port" in result.stderr


def test_gunicorn_loads_the_config_module_as_intended(env: dict[str, str], tmp_path: Path) -> None:
    env = {
        **env,
        "HOOKPOST_ADMIN_TOKEN": "t" * 32,  # --print-config loads the app too
        "WEB_CONCURRENCY": "3",
        "HOOKPOST_BIND": "127.0.0.1:9999, unix:/tmp/hookpost.sock",
        "HOOKPOST_ACCESS_LOG": "0",
    }
    printed = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "python:hookpost.process.gunicorn_conf", "--print-config"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    config = {name.strip(): value.strip() for name, _, value in (line.partition("=") for line in printed.splitlines())}

    assert config["worker_class"] == "hookpost.process.web_worker.WebWorker"
    assert config["wsgi_app"] == "hookpost.app:create_app()"
    assert config["control_socket_disable"] == "True"
    assert config["workers"] == "3"
    assert config["bind"] == "['127.0.0.1:9999', 'unix:/tmp/hookpost.sock']"
    assert config["accesslog"] == "None"
    assert config["max_requests_jitter"] == str(int(config["max_requests"]) // 10)


def test_uvicorn_workers_are_configured_for_uvloop_and_httptools() -> None:
    """What the worker class asks Uvicorn for; test_gunicorn_faults.py asks running workers."""

    async def asgi_app(scope: object, receive: object, send: object) -> None:
        pass

    config = Config(app=asgi_app, **WebWorker.CONFIG_KWARGS)
    config.load()

    assert issubclass(config.http_protocol_class, HttpToolsProtocol)
    loop_factory = config.get_loop_factory()
    assert loop_factory is not None
    assert loop_factory.__module__ == "uvloop"


def test_api_argv_calls_the_app_factory_and_passes_overrides() -> None:
    argv = api_argv(["unix:/run/hookpost.sock"], workers=4)

    assert argv[:3] == [sys.executable, "-m", "gunicorn"]
    assert argv[-1] == "hookpost.app:create_app()"
    assert argv[argv.index("--config") + 1] == "python:hookpost.process.gunicorn_conf"
    assert argv[argv.index("--bind") + 1] == "unix:/run/hookpost.sock"
    assert argv[argv.index("--workers") + 1] == "4"


def test_serve_runs_fewer_processes_on_sqlite_unless_told(tmp_path: Path) -> None:
    sqlite = Settings(data_dir=tmp_path)
    postgres = Settings(data_dir=tmp_path, database_url="postgresql+asyncpg://hp@db/hp")

    assert serve_processes(sqlite) == ServeProcesses(api_workers=1, worker_concurrency=1)
    assert serve_processes(postgres) == ServeProcesses(api_workers=2, worker_concurrency=None)  # one per CPU
    told = Settings(data_dir=tmp_path, serve_api_workers=3, serve_worker_concurrency=2)
    assert serve_processes(told) == ServeProcesses(api_workers=3, worker_concurrency=2)
    assert serve_processes(told, workers=2, concurrency=1) == ServeProcesses(api_workers=2, worker_concurrency=1)


@pytest.mark.parametrize(
    ("host", "expected"), [("127.0.0.1", "127.0.0.1:80"), ("::1", "[::1]:80"), ("[::]", "[::]:80")]
)
def test_host_port_brackets_ipv6(host: str, expected: str) -> None:
    assert host_port(host, 80) == expected


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+asyncpg://hp:s3cret@db:5432/hp", "postgresql+asyncpg://hp:***@db:5432/hp"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("amqp://guest@mq//", "amqp://guest@mq//"),
        ("sqlite+aiosqlite:////data/hookpost.db", "sqlite+aiosqlite:////data/hookpost.db"),
        ("filesystem://", "filesystem://"),
    ],
)
def test_urls_are_shown_without_passwords(url: str, shown: str) -> None:
    assert redact_url(url) == shown
