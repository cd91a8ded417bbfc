"""OpenTelemetry traces: one trace per message, from the API request that accepted it to each
of its attempts, however much later (docs/integrations.md, OpenTelemetry).

Off by default, and free when off: this module imports nothing of OpenTelemetry, every
function here returns at once while ``setup`` has not switched tracing on, and the packages
are loaded (``observability.otel``) only by a process that traces. On with
``HOOKPOST_OTEL_ENABLED=true``, or when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; ``HOOKPOST_OTEL_ENABLED=false``,
``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` keep it off whatever else is set.

A span is carried between processes as a W3C ``traceparent``: in a Celery task header per
delivery (dispatch -> claim) and in the message's row (commit -> any later claim).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hookpost.observability.otel import Otel, SpanHandle
    from hookpost.settings import Settings

# Task header the dispatcher sets, beside the request ids: {delivery id: dispatch span's traceparent}.
TRACEPARENTS_HEADER = "hookpost_traceparents"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

_otel: Otel | None = None
_OFF: AbstractContextManager[None] = nullcontext()

Attributes = Mapping[str, str | int | float | bool]


class TracingUnavailable(RuntimeError):
    """Tracing was asked for, and the OpenTelemetry packages (the ``otel`` extra) are missing."""


def wanted(settings: Settings) -> bool:
    """Whether this process should trace, from ``HOOKPOST_OTEL_ENABLED`` and the standard variables."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    if settings.otel_enabled is not None:
        return settings.otel_enabled
    return any(os.environ.get(name) for name in ENDPOINT_VARIABLES)


def setup(settings: Settings, role: str) -> bool:
    """Switch tracing on in this process if it is wanted (once; later calls keep the first)."""
    global _otel  # noqa: PLW0603 - one tracer provider per process
    if _otel is None and wanted(settings):
        try:
            from hookpost.observability.otel import Otel  # noqa: PLC0415 - only a process that traces loads it
        except ImportError as missing:
            raise TracingUnavailable(
                f"tracing is on, but OpenTelemetry is not installed ({missing.name}): install Hookpost with "
                "its otel extra (`uv sync --extra otel`, `pip install 'hookpost[otel]'`; the container image has it)"
            ) from missing
        _otel = Otel(role)
    return _otel is not None


def enabled() -> bool:
    return _otel is not None


def flush() -> None:
    """Export the spans still buffered (before a process exits without running atexit)."""
    if _otel is not None:
        _otel.flush()


def span(
    name: str, *, parent: str | None = None, attributes: Attributes | None = None
) -> AbstractContextManager[SpanHandle | None]:
    """A span current for the ``with`` block, a child of ``parent`` (a traceparent) or of the
    current span; yields None, and costs nothing, when tracing is off."""
    if _otel is None:
        return _OFF
    return _otel.span(name, parent, attributes)


def start_span(name: str, parent: str | None, attributes: Attributes | None = None) -> SpanHandle | None:
    """A span that is not made current, ended by its ``end()``; None when tracing is off."""
    if _otel is None:
        return None
    return _otel.start_span(name, parent, attributes)


def past_span(
    name: str, parent: str | None, start_ns: int, end_ns: int, attributes: Attributes | None = None
) -> str | None:
    """Record a span that already happened (one delivery's share of a batch's claim or record);
    returns its traceparent, for its children. None when tracing is off."""
    if _otel is None:
        return None
    return _otel.past_span(name, parent, start_ns, end_ns, attributes)


def current_traceparent() -> str | None:
    return None if _otel is None else _otel.current_traceparent()


@contextmanager
def attached(traceparent: str | None) -> Iterator[None]:
    """Make ``traceparent`` the current context for the block (code that starts spans of its
    own, as the Celery instrumentation's publish, starts them under it)."""
    if _otel is None or traceparent is None:
        yield
        return
    with _otel.attached(traceparent):
        yield


def log_ids() -> tuple[str, str] | None:
    """The current trace and span ids as hex, for a log line; None when there is no span."""
    return None if _otel is None else _otel.log_ids()


def instrument_app(app: Any) -> None:
    """The ASGI request spans (the FastAPI instrumentation), outermost."""
    if _otel is not None:
        _otel.instrument_app(app)


def instrument_engine(engine: Any) -> None:
    """SQL statement spans for an engine (only under a span of ours, never a trace of their own)."""
    if _otel is not None:
        _otel.instrument_engine(engine)


def timestamp_ns() -> int:
    """Now, as spans take it (wall-clock nanoseconds); 0 when tracing is off (nothing reads it)."""
    return 0 if _otel is None else _otel.now_ns()
