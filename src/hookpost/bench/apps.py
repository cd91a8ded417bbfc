"""The two reference servers, run under the same Gunicorn config and worker count as Hookpost.

``limit_app``: a bare ASGI app answering every request with a constant body, the most the
server stack can do on this machine. ``naive_app()``: what a team would write from a
tutorial: FastAPI validates the same message body and inserts one row, with asyncpg on
PostgreSQL (aiosqlite on SQLite), and answers 202.

Both read ``HOOKPOST_DATABASE_URL`` like Hookpost does.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response
from starlette.types import Receive, Scope, Send

from hookpost.messages.schemas import MessageIn

LIMIT_BODY = b'{"ok":true}'
NAIVE_TABLE = "bench_naive_message"

_LIMIT_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(LIMIT_BODY)).encode())],
}
_LIMIT_BODY = {"type": "http.response.body", "body": LIMIT_BODY}


async def limit_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    # Read the request body to its end, as any real endpoint has to.
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send(_LIMIT_START)
    await send(_LIMIT_BODY)


def _plain_postgres_url(url: str) -> str:
    """``postgresql+asyncpg://...`` (SQLAlchemy's spelling) as asyncpg takes it."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


def sqlite_path(url: str) -> str:
    return url.split(":///", 1)[1]


async def create_naive_table(database_url: str) -> None:
    """The naive service's one table, created once before its workers start."""
    if database_url.startswith("sqlite"):
        import aiosqlite  # noqa: PLC0415 - only the embedded variant needs it

        async with aiosqlite.connect(sqlite_path(database_url)) as db:
            await db.execute(
                f"CREATE TABLE IF NOT EXISTS {NAIVE_TABLE} "
                "(id TEXT PRIMARY KEY, event_type TEXT NOT NULL, payload TEXT NOT NULL, created_at TEXT NOT NULL)"
            )
            await db.commit()
        return
    import asyncpg  # type: ignore[import-untyped]  # noqa: PLC0415

    connection = await asyncpg.connect(_plain_postgres_url(database_url))
    try:
        await connection.execute(
            f"CREATE TABLE IF NOT EXISTS {NAIVE_TABLE} "
            "(id TEXT PRIMARY KEY, event_type TEXT NOT NULL, payload JSONB NOT NULL, "
            "created_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
    finally:
        await connection.close()


def naive_app() -> FastAPI:
    """The tutorial version: validate, insert one row, answer 202."""
    database_url = os.environ["HOOKPOST_DATABASE_URL"]
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if database_url.startswith("sqlite"):
            import aiosqlite  # noqa: PLC0415

            # One connection per worker, with the durability Hookpost promises (WAL, fsync
            # on every commit) and a busy timeout, since both workers write to the file.
            db = await aiosqlite.connect(sqlite_path(database_url))
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA busy_timeout=30000")
            state["sqlite"] = db
            try:
                yield
            finally:
                await db.close()
        else:
            import asyncpg  # noqa: PLC0415

            pool = await asyncpg.create_pool(_plain_postgres_url(database_url), min_size=10, max_size=10)
            state["pool"] = pool
            try:
                yield
            finally:
                await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=204)

    @app.post("/msg", status_code=202)
    async def create(data: MessageIn) -> dict[str, str]:
        msg_id = f"msg_{uuid.uuid4().hex}"
        payload = json.dumps(data.payload)
        if "sqlite" in state:
            db = state["sqlite"]
            await db.execute(
                f"INSERT INTO {NAIVE_TABLE} (id, event_type, payload, created_at) "  # noqa: S608 - a constant
                "VALUES (?, ?, ?, datetime('now'))",
                (msg_id, data.event_type, payload),
            )
            await db.commit()
        else:
            await state["pool"].execute(
                f"INSERT INTO {NAIVE_TABLE} (id, event_type, payload) VALUES ($1, $2, $3)",  # noqa: S608
                msg_id,
                data.event_type,
                payload,
            )
        return {"id": msg_id}

    return app
