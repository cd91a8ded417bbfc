"""A request id per API request, carried in a contextvar into every log line of the request
and, through the dispatcher's task headers, into the Celery worker's attempt log lines."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only types: ``hookpost worker-health`` imports this module, and starts fast
    from starlette.types import Scope

HEADER = "x-request-id"
_HEADER = HEADER.encode()
# Task header the dispatcher sets: {delivery id: request id} for the deliveries of a task.
# A header rather than a task argument, so a worker of an older version just ignores it.
REQUEST_IDS_HEADER = "hookpost_request_ids"
# What an incoming id may look like; anything else (too long, spaces, quotes, control
# characters that could forge a log line) is replaced by a fresh id.
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")

request_id_var: ContextVar[str | None] = ContextVar("hookpost_request_id", default=None)


def new_request_id() -> str:
    # A correlation id, not a secret: the process's PRNG, not a getrandom() call per request
    # (uuid4 was 5 % of an API worker's CPU under load).
    return f"{random.getrandbits(128):032x}"


def acceptable(value: str | None) -> bool:
    return value is not None and _ACCEPTABLE.fullmatch(value) is not None


def current_request_id() -> str | None:
    return request_id_var.get()


def request_ids_header(request_ids: Mapping[str, str]) -> dict[str, dict[str, str]] | None:
    """Celery task headers carrying the request ids, or None when there are none."""
    return {REQUEST_IDS_HEADER: dict(request_ids)} if request_ids else None


def incoming_request_id(scope: Scope) -> str:
    """The request's ``x-request-id`` if it is acceptable, else a fresh id (``api.edge`` sets
    it for the request and returns it in the response)."""
    for name, value in scope["headers"]:
        if name == _HEADER:
            incoming = value.decode("latin-1")
            return incoming if acceptable(incoming) else new_request_id()
    return new_request_id()
