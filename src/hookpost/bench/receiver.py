"""The subscriber endpoint: a bare ASGI app on Uvicorn (httptools, uvloop) that notes when
each webhook arrives.

It answers every POST with 200 at once (a path starting ``/slow`` after ``SLOW_SECONDS``)
and records ``(path, webhook-id, arrival time)``; a POST to a path starting ``/batch`` (a FIFO
destination's, a JSON array of messages) is recorded as one receipt per message, its ``id`` in
place of the webhook id, so a batch counts as the messages it carries.
The bench reads the records over HTTP: ``GET /_stats`` (counts per path) and
``GET /_receipts?path=/p`` (every receipt on a path, as JSON).

Run as ``python -m hookpost.bench.receiver PORT``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import defaultdict
from urllib.parse import parse_qs

from starlette.types import Message, Receive, Scope, Send

SLOW_SECONDS = 5.0  # how long a /slow... path takes to answer: the fairness scenario's slow receiver
BATCH_PREFIX = "/batch"  # paths whose bodies are JSON arrays of messages, counted message by message

# path -> list of (webhook id, unix time of arrival)
_receipts: defaultdict[str, list[tuple[str, float]]] = defaultdict(list)


async def _answer(send: Send, status: int, body: bytes, content_type: bytes = b"text/plain") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _record(path: str, scope: Scope, receive: Receive) -> None:
    """Note a POST's arrival: by its webhook id, or a batch's messages each by its own id."""
    arrived = time.time()
    batch = path.startswith(BATCH_PREFIX)
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if batch:  # only a batch's body is read: the other paths stay as cheap as they were
            chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    if batch:
        _receipts[path].extend((str(item["id"]), arrived) for item in json.loads(b"".join(chunks)))
        return
    webhook_id = ""
    for name, value in scope["headers"]:
        if name == b"webhook-id":
            webhook_id = value.decode()
            break
    _receipts[path].append((webhook_id, arrived))


async def receiver_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            message: Message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": f"{message['type']}.complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
        return
    path: str = scope["path"]
    if scope["method"] == "POST":
        await _record(path, scope, receive)
        if path.startswith("/slow"):
            await asyncio.sleep(SLOW_SECONDS)
        await _answer(send, 200, b"ok")
        return
    if path == "/_stats":
        body = json.dumps({p: len(r) for p, r in _receipts.items()}).encode()
        await _answer(send, 200, body, b"application/json")
        return
    if path == "/_receipts":
        wanted = parse_qs(scope["query_string"].decode()).get("path", [""])[0]
        body = json.dumps(_receipts.get(wanted, [])).encode()
        await _answer(send, 200, body, b"application/json")
        return
    await _answer(send, 404, b"not found")


def main() -> None:
    import uvicorn  # noqa: PLC0415

    port = int(sys.argv[1])
    uvicorn.run(
        receiver_app,
        host="127.0.0.1",
        port=port,
        # The fastest parser and loop: the receiver must never be what limits a delivery figure.
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
        lifespan="on",
        backlog=2048,
    )


if __name__ == "__main__":
    main()
