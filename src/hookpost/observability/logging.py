"""Log output: one JSON object per line (``api``, ``worker``, ``scheduler``, ``serve``) or a
plain line for people (``dev``), each carrying the request id when there is one.

``HOOKPOST_LOG_FORMAT`` picks the format (the commands set their default in the
environment of the processes they start); ``HOOKPOST_LOG_LEVEL`` the level.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from hookpost.observability import tracing
from hookpost.observability.request_id import current_request_id

LogFormat = Literal["json", "plain"]
FORMAT_VARIABLE = "HOOKPOST_LOG_FORMAT"

# Loggers with handlers of their own (they do not propagate to the root): the servers'.
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access")
# Chatty at INFO: httpx logs every request a worker sends, which the attempt line already says.
QUIET_LOGGERS = ("httpx", "httpcore")
_OURS = "_hookpost_handler"
# A browser's WebSocket may pass the admin token as ?token=...; it must never reach a log.
_TOKEN_IN_QUERY = re.compile(r"([?&](?:token|access_token)=)[^&\s\"]*", re.IGNORECASE)


def redact_query_tokens(text: str) -> str:
    return _TOKEN_IN_QUERY.sub(r"\1***", text)


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "pid", "request_id"?, "trace_id"?, "span_id"?,
    "exception"?}`` on one line; the trace's ids when tracing is on and a span is current."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
            "pid": record.process,
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            entry["request_id"] = request_id
        trace_ids = tracing.log_ids()
        if trace_ids is not None:
            entry["trace_id"], entry["span_id"] = trace_ids
        if record.name == "uvicorn.access":
            entry["message"] = redact_query_tokens(message)
            args = record.args
            if isinstance(args, tuple) and len(args) == 5:
                client, method, path, _, status = args
                entry.update(client=client, method=method, path=redact_query_tokens(str(path)), status=status)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """``2025-01-01T12:00:00.000Z INFO hookpost.x message [request_id=...]``."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name} {record.getMessage()}"
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            line += f" [request_id={request_id}]"
        if record.name == "uvicorn.access":
            line = redact_query_tokens(line)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def make_formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else PlainFormatter()


def configure_logging(log_format: LogFormat, level: str = "INFO") -> None:
    """Send every log record to stderr in ``log_format``; safe to call more than once.

    With JSON the servers' own loggers (Uvicorn's, Gunicorn's) are switched to it too, so
    a process writes nothing but JSON lines; with the plain format they keep their own.
    """
    formatter = make_formatter(log_format)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _OURS, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    setattr(handler, _OURS, True)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # a library's warning becomes a log line like any other
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    if log_format == "json":
        for name in SERVER_LOGGERS:
            for server_handler in logging.getLogger(name).handlers:
                server_handler.setFormatter(formatter)
