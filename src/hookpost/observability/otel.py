"""The OpenTelemetry side of ``observability.tracing``: imported only by a process that traces.

The SDK's tracer provider with the OTLP HTTP/protobuf exporter behind a batch processor, each
configured by the standard ``OTEL_*`` variables (endpoint, headers, sampler, batch delays,
resource); the instrumentations of FastAPI (request spans), Celery (publish and run spans)
and SQLAlchemy (statement spans).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

SERVICE_NAME = "hookpost"
# Probes and scrapes every few seconds: a trace each would bury the messages' traces.
EXCLUDED_URLS = "/healthz,/readyz,/metrics,/api/v1/health"
_propagator = TraceContextTextMapPropagator()


def _resource(role: str) -> Resource:
    attributes: dict[str, str] = {"hookpost.process": role}
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win; "hookpost" only in their absence.
    if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    ):
        attributes["service.name"] = SERVICE_NAME
    return Resource.create(attributes)


def traceparent_of(span_context: trace.SpanContext) -> str:
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags):02x}"


def context_of(traceparent: str | None) -> otel_context.Context | None:
    """The context whose current span is ``traceparent``'s; None (the current context) for none."""
    if traceparent is None:
        return None
    return _propagator.extract({"traceparent": traceparent})


class SpanHandle:
    """A span of ours, as the code that opened it sees it."""

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    @property
    def traceparent(self) -> str:
        return traceparent_of(self._span.get_span_context())

    def set(self, key: str, value: str | int | float | bool) -> None:
        self._span.set_attribute(key, value)

    def failed(self, description: str) -> None:
        self._span.set_status(trace.Status(trace.StatusCode.ERROR, description))

    def end(self) -> None:
        self._span.end()


class _ChildrenOnlyTracer:
    """Starts a span only under a recording one: the engine's claims and records serve many
    messages at once, and their statements would otherwise each be a trace of their own.
    (The SQLAlchemy instrumentation's ``EngineTracer`` calls ``start_span`` only.)"""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start_span(self, name: str, context: otel_context.Context | None = None, **kwargs: Any) -> trace.Span:
        if not trace.get_current_span(context).is_recording():
            return trace.INVALID_SPAN
        return self._tracer.start_span(name, context, **kwargs)


class Otel:
    def __init__(self, role: str) -> None:
        # Sampler (OTEL_TRACES_SAMPLER), exporter (OTEL_EXPORTER_OTLP_*) and batching
        # (OTEL_BSP_*) each read their standard variables.
        self.provider = TracerProvider(resource=_resource(role))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(self.provider)
        self.tracer = self.provider.get_tracer("hookpost")
        self._statement_tracer = _ChildrenOnlyTracer(self.provider.get_tracer("hookpost.sql"))
        self._connections = metrics.get_meter("hookpost.sql").create_up_down_counter("db.client.connections.usage")
        CeleryInstrumentor().instrument(  # type: ignore[no-untyped-call]
            tracer_provider=self.provider
        )

    def flush(self) -> None:
        self.provider.force_flush()

    @contextmanager
    def span(self, name: str, parent: str | None, attributes: Mapping[str, Any] | None) -> Iterator[SpanHandle]:
        with self.tracer.start_as_current_span(name, context_of(parent), attributes=attributes) as span:
            yield SpanHandle(span)

    def start_span(self, name: str, parent: str | None, attributes: Attributes | None) -> SpanHandle:
        return SpanHandle(self.tracer.start_span(name, context_of(parent), attributes=attributes))

    def past_span(
        self, name: str, parent: str | None, start_ns: int, end_ns: int, attributes: Attributes | None
    ) -> str:
        span = self.tracer.start_span(name, context_of(parent), attributes=attributes, start_time=start_ns)
        span.end(end_time=end_ns)
        return traceparent_of(span.get_span_context())

    def current_traceparent(self) -> str | None:
        span_context = trace.get_current_span().get_span_context()
        return traceparent_of(span_context) if span_context.is_valid else None

    @contextmanager
    def attached(self, traceparent: str) -> Iterator[None]:
        token = otel_context.attach(_propagator.extract({"traceparent": traceparent}))
        try:
            yield
        finally:
            otel_context.detach(token)

    def log_ids(self) -> tuple[str, str] | None:
        span_context = trace.get_current_span().get_span_context()
        if not span_context.is_valid:
            return None
        return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"

    def instrument_app(self, app: Any) -> None:
        # Without its spans for each ASGI receive and send (three a message): they tell nothing
        # the request span does not, and each costs as much as one of ours.
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=self.provider, excluded_urls=EXCLUDED_URLS, exclude_spans=["receive", "send"]
        )

    def instrument_engine(self, engine: Any) -> None:
        EngineTracer(  # type: ignore[no-untyped-call]
            self._statement_tracer, getattr(engine, "sync_engine", engine), self._connections
        )

    def now_ns(self) -> int:
        return time.time_ns()
