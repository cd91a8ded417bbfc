"""The tracing phase's parts that need no stack: the OTLP receiver it exports to (a real
exporter's batch accepted, counted and discarded) and the report showing the traced run's
ratios. The phase itself runs with ``hookpost bench --only tracing``; it is left out of
``--quick`` (two whole stacks loaded in turns)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from hookpost.bench.report import build_report, markdown
from hookpost.bench.stack import free_port
from tests.support.eventually import eventually


@pytest.fixture
def sink() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "hookpost.bench.otlp_sink", str(port)])
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert process.poll() is None, f"the sink exited with {process.returncode}"
        try:
            return httpx.get(url + "/_stats", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        eventually(answers, "the OTLP sink", timeout=30)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_sink_takes_a_real_exporters_spans(sink: str) -> None:
    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=sink + "/v1/traces", timeout=5)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("bench-test").start_as_current_span("one"):
        pass
    provider.shutdown()
    stats = httpx.get(sink + "/_stats", timeout=5).json()
    assert stats["exports"] == 1
    assert stats["bytes"] > 0
    assert httpx.post(sink + "/v1/logs", content=b"", timeout=5).status_code == 404


def test_report_shows_the_traced_runs_ratios() -> None:
    off = {"name": "tracing-off-delivery", "config": {}, "msg_per_s": 200.0, "stack_cpu_ms_per_msg": 4.0}
    on = {
        "name": "tracing-on-delivery",
        "config": {},
        "msg_per_s": 198.0,
        "stack_cpu_ms_per_msg": 6.0,
        "tracing_ratios": {"msg_per_s": 0.99, "stack_cpu_ms_per_msg": 1.5, "p50_ms": None},
    }
    report = build_report([off, on], {"quick": True, "workers": 2, "generator": "python"}, {}, [], datetime.now(UTC))
    text = markdown({**report, "environment": {"database": "sqlite", "broker": "filesystem"}})
    row = next(line for line in text.splitlines() if line.startswith("| tracing-on-delivery"))
    assert "stack CPU 6.00 ms/msg" in row
    assert "tracing on / off: msg_per_s 0.99x, stack_cpu_ms_per_msg 1.50x" in row
    assert "p50_ms" not in row
