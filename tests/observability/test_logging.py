"""Log formats and the request id, in process: one JSON object per line, the id from the
``x-request-id`` header (or a new one) in the response and in the request's log lines."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from hookpost.app import create_app
from hookpost.observability.logging import JsonFormatter, PlainFormatter, configure_logging
from hookpost.observability.request_id import request_id_var
from hookpost.settings import Settings
from tests.observability.commands import base_env, hookpost_command
from tests.support.eventually import eventually
from tests.support.processes import free_port


def record(name: str, message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.INFO, __file__, 1, message, args, exc_info)


def test_json_line_has_the_fields_and_the_request_id() -> None:
    token = request_id_var.set("req-1")
    try:
        line = JsonFormatter().format(record("hookpost.x", "sent %s", "msg_1", exc=True))
    finally:
        request_id_var.reset(token)

    assert "\n" not in line  # the traceback is escaped inside the one object
    entry = json.loads(line)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "hookpost.x"
    assert entry["message"] == "sent msg_1"
    assert entry["request_id"] == "req-1"
    assert entry["time"].endswith("Z")
    assert "ValueError: boom" in entry["exception"]


def test_json_line_without_a_request_has_no_request_id() -> None:
    entry = json.loads(JsonFormatter().format(record("hookpost.x", "hello")))

    assert "request_id" not in entry


def test_access_lines_never_carry_a_token_from_the_query() -> None:
    query = "/s?token=hp_secret&a=1"
    access = record("uvicorn.access", '%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET", query, "1.1", 101)

    entry = json.loads(JsonFormatter().format(access))
    plain = PlainFormatter().format(access)

    assert "hp_secret" not in json.dumps(entry)
    assert "hp_secret" not in plain
    assert entry["path"] == "/s?token=***&a=1"
    assert entry["status"] == 101
    assert entry["method"] == "GET"


def test_plain_line_is_for_people() -> None:
    token = request_id_var.set("req-2")
    try:
        line = PlainFormatter().format(record("hookpost.x", "hello"))
    finally:
        request_id_var.reset(token)

    assert not line.startswith("{")
    assert line.endswith("INFO    hookpost.x hello [request_id=req-2]")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_twice_leaves_one_handler() -> None:
    configure_logging("json")
    configure_logging("plain")

    ours = [handler for handler in logging.getLogger().handlers if getattr(handler, "_hookpost_handler", False)]
    assert len(ours) == 1
    assert isinstance(ours[0].formatter, PlainFormatter)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """JSON lines of everything logged under ``hookpost``."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("hookpost")
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


def test_request_id_is_taken_from_the_header_and_returned(client: TestClient) -> None:
    response = client.get("/api/v1/app", headers={"x-request-id": "checkout-42.a:b"})

    assert response.status_code == 200
    assert response.headers["x-request-id"] == "checkout-42.a:b"


@pytest.mark.parametrize("sent", [None, "has spaces", "x" * 129, 'quote"and\\slash', ""])
def test_request_id_is_made_when_missing_or_unfit(client: TestClient, sent: str | None) -> None:
    headers = {} if sent is None else {"x-request-id": sent}

    first = client.get("/healthz", headers=headers).headers["x-request-id"]
    second = client.get("/healthz", headers=headers).headers["x-request-id"]

    assert first != sent
    assert len(first) == 32
    assert int(first, 16) >= 0
    assert first != second


def test_an_unexpected_error_is_logged_with_the_request_id(settings: Settings, captured: io.StringIO) -> None:
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"x-request-id": "req-boom"})

    assert response.status_code == 500
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert errors, lines
    assert errors[0]["request_id"] == "req-boom"
    assert "secret internals" in errors[0]["exception"]


def test_dev_writes_plain_lines_for_people(tmp_path: Path) -> None:
    env = base_env(tmp_path / "data")
    with hookpost_command("dev", env=env, log_dir=tmp_path, port=free_port()) as dev:
        dev.wait_http()
        assert httpx.get(f"{dev.base_url}/healthz", headers={"x-request-id": "dev-1"}, timeout=10).status_code == 200

        def access_logged() -> bool:
            return "GET /healthz" in dev.output()

        eventually(access_logged, "the access line", timeout=30)
        lines = [line for line in dev.output().splitlines() if line.strip()]

    assert not [line for line in lines if line.startswith("{")], lines
