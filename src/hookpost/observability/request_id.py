"""A request id per API request, carried in a contextvar into every log line of the request
and, through the dispatcher's task headers, into the Celery worker's attempt log lines."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only types: ``hookpost worker-health`` imports this module, and starts fast
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class RequestIdMiddleware:
    """Takes ``x-request-id`` from the request (or makes one) and returns it in the response.

    The contextvar is set and not reset: each request runs in its own task, so the value
    cannot leak into another request, and it is still set when Starlette's outermost error
    handler logs an unhandled exception.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == _HEADER:
                incoming = value.decode("latin-1")
                break
        request_id = incoming if acceptable(incoming) else new_request_id()
        assert request_id is not None
        request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(name, value) for name, value in message.get("headers", []) if name.lower() != _HEADER]
                message["headers"] = [*headers, (_HEADER, request_id.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_id)
