"""The API's one middleware: request id, metrics, the body limit, the error boundary, the
token check before the body, and idempotency keys.

One pure-ASGI layer doing the work of six: each layer wrapped ``send`` (and some
``receive``) in a closure of its own, or at least added a coroutine that every resumption
of the request passes through; py-spy put the chain at several per cent of an API worker.
Here one ``send`` wrapper notes the status, tracks whether the response started and adds
the request id; one ``receive`` wrapper counts the body.

In order, as the six layers ran: the request id is set before anything runs or logs; a
body over the limit is refused with 413 (from its declared length, else as it arrives);
whatever escapes what follows is answered in the error shape (``errors.unhandled_answer``);
a body-carrying API request whose token names no one is refused before its body is read
(``auth.middleware``); a keyed POST to the API whose token names someone is answered once
(``idempotency.middleware``); every HTTP request is counted and timed by route template.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookpost.api.body_limit import BodyTooLarge, too_large_answer
from hookpost.api.errors import unhandled_answer
from hookpost.auth.middleware import AuthenticateBeforeBody
from hookpost.idempotency.middleware import answer_keyed, keyed
from hookpost.observability.request_id import HEADER, incoming_request_id, request_id_var
from hookpost.observability.requests import observe_request

_HEADER = HEADER.encode()
_CONTENT_LENGTH = b"content-length"


class ApiEdge:
    def __init__(self, app: ASGIApp, max_body_bytes: int, authenticate: AuthenticateBeforeBody) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope)
        # Set and not reset: each request runs in its own task, so the value cannot leak into
        # another request, and it is still set when the server logs an unhandled exception.
        request_id_var.set(request_id)
        if kind == "websocket":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        limit = self.max_body_bytes
        status_code = 500
        response_started = False
        id_header = (_HEADER, request_id.encode("latin-1"))
        try:
            for name, value in scope["headers"]:
                if name == _CONTENT_LENGTH:
                    if value.isdigit() and int(value) > limit:
                        await too_large_answer(limit)(scope, receive, send)
                        status_code, response_started = 413, True
                        return
                    break
            received = 0

            async def limited_receive() -> Message:
                # Chunked bodies carry no content-length: count as they arrive.
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise BodyTooLarge(limit)
                return message

            async def edge_send(message: Message) -> None:
                nonlocal status_code, response_started
                if message["type"] == "http.response.start":
                    status_code = message["status"]
                    response_started = True
                    headers = [(name, value) for name, value in message.get("headers", ()) if name.lower() != _HEADER]
                    headers.append(id_header)
                    message["headers"] = headers
                await send(message)

            try:
                refusal = await self.authenticate.refusal(scope)
                if refusal is not None:
                    await refusal(scope, limited_receive, edge_send)
                elif self.authenticate.checks(scope) and (key_and_token := keyed(scope)) is not None:
                    # Only a caller the token check let in may store an answer: a key on any
                    # other request (the console, the portal, a wrong token) is ignored.
                    await answer_keyed(self.app, scope, limited_receive, edge_send, *key_and_token)
                else:
                    await self.app(scope, limited_receive, edge_send)
            except Exception as exc:  # answered here: nothing is re-raised to the server
                if response_started:
                    return  # too late for an answer; the client sees the response end early
                answer = too_large_answer(limit) if isinstance(exc, BodyTooLarge) else unhandled_answer(scope, exc)
                await answer(scope, receive, edge_send)
        finally:
            observe_request(scope, status_code, time.perf_counter() - started_at)
