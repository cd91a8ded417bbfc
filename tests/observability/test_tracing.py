"""OpenTelemetry traces: one trace per message, across real ``hookpost api`` (Gunicorn),
``hookpost worker`` (a prefork Celery pool) and ``hookpost scheduler`` processes on PostgreSQL
and Redis, exported over OTLP/HTTP to a receiver on loopback that decodes what it is sent.
And with tracing off, no OpenTelemetry module in the app's process at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from hookpost.observability import tracing
from hookpost.settings import Settings
from tests.observability.commands import ADMIN_TOKEN, base_env, hookpost_command, hookpost_run
from tests.support.databases import fresh_postgres_database
from tests.support.eventually import eventually
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.processes import free_port
from tests.support.receiver import Receiver
from tests.support.services import REDIS_URL, require

ENGINE_SPANS = ("hookpost.claim", "hookpost.send", "hookpost.record")


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture
def traced_env(tmp_path: Path, otlp: OtlpReceiver) -> Iterator[dict[str, str]]:
    broker = require("Redis", REDIS_URL)
    redis.Redis.from_url(broker).flushdb()  # no leftover tasks from an earlier run
    with fresh_postgres_database() as database_url:
        yield base_env(
            tmp_path / "data",
            HOOKPOST_DATABASE_URL=database_url,
            HOOKPOST_BROKER_URL=broker,
            HOOKPOST_RETRY_SCHEDULE="0,1",
            HOOKPOST_RETRY_JITTER="0",
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp.endpoint,
            OTEL_SERVICE_NAME="hookpost-under-test",
            OTEL_BSP_SCHEDULE_DELAY="100",  # ms: spans reach the receiver soon after they end
        )


def _one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    named = [span for span in spans if span.name == name]
    assert len(named) == 1, f"{len(named)} spans named {name}"
    return named[0]


def _attempt_spans_complete(trace_id: str, attempts: int) -> object:
    def complete(spans: list[ReceivedSpan]) -> bool:
        names = [span.name for span in spans if span.trace_id == trace_id]
        return all(names.count(name) >= attempts for name in ENGINE_SPANS)

    return complete


def test_a_message_and_its_retry_are_one_trace_from_request_to_record(
    tmp_path: Path, traced_env: dict[str, str], otlp: OtlpReceiver, receiver: Receiver
) -> None:
    receiver.fail_first = 1  # the first attempt fails: the retry comes from the scheduler's sweep
    migrated = hookpost_run("migrate", env=traced_env)
    assert migrated.returncode == 0, migrated.stderr
    with (
        hookpost_command("worker", "--concurrency", "2", env=traced_env, log_dir=tmp_path) as worker,
        hookpost_command("scheduler", env=traced_env, log_dir=tmp_path),
        hookpost_command("api", "--workers", "1", env=traced_env, log_dir=tmp_path, port=free_port()) as api,
    ):
        api.wait_http()
        auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=f"{api.base_url}/api/v1", headers=auth, timeout=30) as client:
            assert client.post("/app", json={"name": "Acme", "uid": "acme"}).status_code == 201
            assert client.post("/app/acme/endpoint", json={"url": f"{receiver.url}/hook"}).status_code == 201
            sent = client.post("/app/acme/msg", json={"eventType": "order.paid", "payload": {"order": 1}})
        assert sent.status_code == 202, sent.text
        msg_id = sent.json()["id"]
        receiver.wait_for(lambda requests: len(requests) >= 2, timeout=60)

        commits = otlp.wait_for(lambda spans: any(s.name == "hookpost.message.commit" for s in spans))
        commit = next(span for span in commits if span.name == "hookpost.message.commit")
        spans = otlp.wait_for(_attempt_spans_complete(commit.trace_id, 2), timeout=60)

        def attempt_logged() -> bool:
            worker.assert_running()
            return sum(line.get("message", "").startswith("attempt ") for line in worker.json_lines()) >= 2

        eventually(attempt_logged, "the worker's two attempt lines", timeout=30)
        attempt_lines = [line for line in worker.json_lines() if line.get("message", "").startswith("attempt ")]

    trace = [span for span in spans if span.trace_id == commit.trace_id]
    by_id = {span.span_id: span for span in trace}
    assert commit.attributes["hookpost.msg_id"] == msg_id
    assert {span.service for span in trace} == {"hookpost-under-test"}

    # request -> commit -> dispatch -> claim -> send -> record, for the attempt the API dispatched.
    request = by_id[commit.parent_id]
    assert request.name == "POST /api/v1/app/{app_id}/msg"
    assert request.parent_id == ""
    dispatch = _one(trace, "hookpost.dispatch")
    assert dispatch.parent_id == commit.span_id
    claims = sorted((span for span in trace if span.name == "hookpost.claim"), key=lambda span: span.start_ns)
    assert len(claims) == 2
    first, retry = claims
    assert first.parent_id == dispatch.span_id
    # The retry, queued by the scheduler a second later, joins the trace through the message's
    # stored traceparent: a child of the commit span.
    assert retry.parent_id == commit.span_id
    assert retry.start_ns > first.start_ns + 500_000_000
    sends = [span for span in trace if span.name == "hookpost.send"]
    records = [span for span in trace if span.name == "hookpost.record"]
    assert sorted(by_id[send.parent_id].span_id for send in sends) == sorted([first.span_id, retry.span_id])
    assert sorted(by_id[record.parent_id].span_id for record in records) == sorted(send.span_id for send in sends)
    statuses = sorted(send.attributes["http.response.status_code"] for send in sends)  # type: ignore[type-var]
    assert statuses == [200, 500]

    # The worker's JSON log lines carry the trace: each attempt line names its send span.
    assert {(line["trace_id"], line["span_id"]) for line in attempt_lines} == {
        (send.trace_id, send.span_id) for send in sends
    }


# Libraries load some of OpenTelemetry themselves whatever Hookpost does: FastAPI (0.165)
# its API, a dependency of its own; redis-py (8.1) the SDK's metrics, when installed. Each
# probe notes what they load before the app's code runs: the app must add nothing to it.
_LIBRARIES = """
import json, sys
import celery, fastapi, kombu, redis, sqlalchemy

def loaded():
    return sorted(name for name in sys.modules if name.split(".")[0] == "opentelemetry")

libraries = loaded()
"""
_API_PROBE = (
    _LIBRARIES
    + """
from fastapi.testclient import TestClient
from hookpost.app import create_app
from hookpost.settings import get_settings
from tests.support.databases import upgrade_to_head

upgrade_to_head(get_settings())
with TestClient(create_app(), headers={"authorization": "Bearer " + sys.argv[1]}) as client:
    assert client.post("/api/v1/app", json={"name": "A", "uid": "a"}).status_code == 201
    assert client.post("/api/v1/app/a/endpoint", json={"url": "http://127.0.0.1:9/"}).status_code == 201
    assert client.post("/api/v1/app/a/msg", json={"eventType": "x", "payload": {}}).status_code == 202
print(json.dumps({"added": sorted(set(loaded()) - set(libraries)), "all": loaded()}))
"""
)
# A worker process's delivery runtime: it claims and sends the message the API probe stored.
_WORKER_PROBE = (
    _LIBRARIES
    + """
import sqlite3, time
from sqlalchemy import make_url
import hookpost.delivery.tasks
from hookpost.delivery.runtime import WorkerRuntime
from hookpost.settings import get_settings

database = sqlite3.connect(make_url(get_settings().database_url).database)
runtime = WorkerRuntime()
runtime.thread.nudge([row[0] for row in database.execute("SELECT id FROM delivery")])
deadline = time.monotonic() + 30
while database.execute("SELECT count(*) FROM attempt").fetchone()[0] == 0:
    assert time.monotonic() < deadline, "no attempt recorded"
    time.sleep(0.05)
runtime.close()
print(json.dumps({"added": sorted(set(loaded()) - set(libraries)), "all": loaded()}))
"""
)


def _opentelemetry_modules_loaded(data_dir: Path, probe: str, **variables: str) -> dict[str, list[str]]:
    env = base_env(data_dir, **variables)
    env = {key: value for key, value in env.items() if not key.startswith("OTEL_")} | {
        key: value for key, value in variables.items() if key.startswith("OTEL_")
    }
    result = subprocess.run(
        [sys.executable, "-c", probe, ADMIN_TOKEN], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-4000:]
    loaded: dict[str, list[str]] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


TRACING_ONLY = (
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter",
    "opentelemetry.instrumentation",
    "opentelemetry.proto",
)


def test_with_tracing_off_the_app_imports_no_opentelemetry_module(tmp_path: Path) -> None:
    # The API took a message, and a worker's runtime started, delivered it and stopped.
    for probe in (_API_PROBE, _WORKER_PROBE):
        loaded = _opentelemetry_modules_loaded(tmp_path, probe)
        assert loaded["added"] == []
        assert not [name for name in loaded["all"] if name.startswith(TRACING_ONLY)]


def test_the_same_probes_see_opentelemetry_when_tracing_is_on(tmp_path: Path, otlp: OtlpReceiver) -> None:
    on = {"HOOKPOST_OTEL_ENABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint}
    for probe in (_API_PROBE, _WORKER_PROBE):
        assert "opentelemetry.sdk.trace" in _opentelemetry_modules_loaded(tmp_path, probe, **on)["added"]


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"HOOKPOST_OTEL_ENABLED": "true"}, True),
        ({"HOOKPOST_OTEL_ENABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"HOOKPOST_OTEL_ENABLED": "true", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_when_tracing_is_wanted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variables: dict[str, str], expected: bool
) -> None:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "HOOKPOST_OTEL")):
            monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert tracing.wanted(Settings(data_dir=tmp_path)) is expected


def test_tracing_asked_for_without_the_otel_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The one fault forced: OpenTelemetry as absent as on `uv sync --no-dev` without the extra.
    monkeypatch.setitem(sys.modules, "hookpost.observability.otel", None)
    monkeypatch.setattr(tracing, "_otel", None)

    with pytest.raises(tracing.TracingUnavailable, match=r"otel extra"):
        tracing.setup(Settings(data_dir=tmp_path, otel_enabled=True), "api")
    assert not tracing.enabled()
