"""A test-only wrapper around Hookpost's app that says what serves it, for Gunicorn tests.

``gunicorn ... 'tests.process.runtime_probe:create_app()'`` serves the real app, except
that ``GET /__runtime__`` answers with the pid, the running event loop's class and the
class of the HTTP protocol (and its parser) handling that very request, found from the
request's own task: uvicorn runs each request as ``RequestResponseCycle.run_asgi``, whose
cycle reports back to its protocol. The product itself has no such route.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from hookpost.app import create_app as create_hookpost_app

PATH = "/__runtime__"


def _name(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _runtime() -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    coroutine: Any = task.get_coro()
    cycle = coroutine.cr_frame.f_locals["self"]  # the RequestResponseCycle running this request
    protocol = cycle.on_response.__self__  # its on_response is the protocol's bound method
    return {
        "pid": os.getpid(),
        "loop": _name(type(asyncio.get_running_loop())),
        "request_runner": coroutine.__qualname__,
        "protocol": [_name(kind) for kind in type(protocol).__mro__],
        "parser": _name(type(protocol.parser)),
    }


def create_app() -> ASGIApp:
    app = create_hookpost_app()

    async def probe(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await app(scope, receive, send)
            return
        body = json.dumps(_runtime()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return probe
