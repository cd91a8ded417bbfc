"""``idempotency-key`` on every POST, as Svix: the key is scoped to the caller's token and the URL.

The same key with the same body answers with the first answer (status and body) without
running the request again; with another body it is refused with 409, since it cannot be
the retry it claims to be. A repeat that arrives while the first is still being answered
waits for that answer. Server errors (5xx) are not kept: a retry runs again.
"""

from __future__ import annotations

import asyncio
import json
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookpost.idempotency import store
from hookpost.idempotency.store import Answer

Sessions = async_sessionmaker[AsyncSession]
MAX_KEY_LENGTH = 256
# How long a repeat waits for the first request's answer (Svix: 20 s).
WAIT_FOR_FIRST = 20.0
POLL_INTERVAL = 0.1


def keyed(scope: Scope) -> tuple[str, str] | None:
    """The idempotency key and token of a POST that carries both, else None (``api.edge``
    then runs the request as it is: a request without a token is refused by the route)."""
    if scope["method"] != "POST":
        return None
    key: str | None = None
    auth: str | None = None
    for name, value in scope["headers"]:  # the first of each, as Starlette's Headers.get
        if name == b"idempotency-key" and key is None:
            key = value.decode("latin-1")
        elif name == b"authorization" and auth is None:
            auth = value.decode("latin-1")
    return (key, auth) if key and auth else None


async def answer_keyed(app: ASGIApp, scope: Scope, receive: Receive, send: Send, key: str, auth: str) -> None:
    """Answer a keyed POST: run it once, or replay the first answer, or refuse (see above)."""
    if len(key) > MAX_KEY_LENGTH:
        await _send_json(
            send,
            422,
            {
                "code": "validation",
                "detail": [
                    {
                        "loc": ["header", "idempotency-key"],
                        "msg": f"at most {MAX_KEY_LENGTH} characters",
                        "type": "string_too_long",
                    }
                ],
            },
        )
        return
    body = await _read_body(receive)
    sessionmaker: Sessions = scope["state"]["hookpost"].sessionmaker
    url = scope["path"].encode() + b"?" + scope.get("query_string", b"")
    record_id = store.digest(auth.encode(), key.encode(), url)
    request_hash = store.digest(body)
    deadline = time.monotonic() + WAIT_FOR_FIRST
    while True:
        record = await store.claim(sessionmaker, record_id, request_hash)
        if record is None:
            await _first(app, scope, body, send, sessionmaker, record_id)
            return
        if record.request_hash != request_hash:
            detail = "This idempotency-key was already used with a different request"
            await _send_json(send, 409, {"code": "conflict", "detail": detail})
            return
        answer = await _answer_of_first(sessionmaker, record_id, record, deadline)
        if answer is not None:
            await _replay(send, answer)
            return
        if time.monotonic() >= deadline:
            detail = "The first request with this idempotency-key is still being answered"
            await _send_json(send, 409, {"code": "conflict", "detail": detail})
            return
        # The first request failed on our side and let the key go: this one runs instead.


async def _first(app: ASGIApp, scope: Scope, body: bytes, send: Send, sessionmaker: Sessions, record_id: str) -> None:
    status = 500
    content_type: str | None = None
    chunks: list[bytes] = []
    replayed = False

    async def replay_body() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def capture(message: Message) -> None:
        nonlocal status, content_type
        if message["type"] == "http.response.start":
            status = message["status"]
            content_type = Headers(raw=message.get("headers", [])).get("content-type")
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
        await send(message)

    try:
        await app(scope, replay_body, capture)
    except BaseException:
        await store.release(sessionmaker, record_id)
        raise
    if status >= 500:
        await store.release(sessionmaker, record_id)
    else:
        await store.finish(sessionmaker, record_id, Answer(status, content_type, b"".join(chunks)))


async def _answer_of_first(
    sessionmaker: Sessions, record_id: str, record: store.Record, deadline: float
) -> Answer | None:
    """The first request's answer, waited for until the deadline; None if it let the key go."""
    found: store.Record | None = record
    while found is not None and found.answer is None and time.monotonic() < deadline:
        await asyncio.sleep(POLL_INTERVAL)  # the first request is still being answered
        found = await store.read(sessionmaker, record_id)
    return None if found is None else found.answer


async def _replay(send: Send, answer: Answer) -> None:
    headers = [(b"content-length", str(len(answer.body)).encode())]
    if answer.content_type:
        headers.append((b"content-type", answer.content_type.encode()))
    await send({"type": "http.response.start", "status": answer.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_json(send: Send, status: int, content: object) -> None:
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
