"""Column types that encrypt on the way in and decrypt on the way out (kit/secret_box.py).

Transparent to everything that uses the models: the delivery code reads
``endpoint.secret`` and ``endpoint.headers`` as before, and never sees ciphertext.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Text, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeDecorator

from hookpost.kit.secret_box import PREFIX, UnreadableSecret, box


def open_text(stored: str) -> str:
    """A stored encrypted text, decrypted; raises ``UnreadableSecret`` when no key opens it."""
    return box().decrypt(stored)


def open_json(stored: str) -> Any:
    """A stored encrypted JSON document, decrypted and parsed (``UnreadableSecret`` likewise)."""
    return json.loads(box().decrypt(stored))


class EncryptedText(TypeDecorator[str]):
    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else box().encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else open_text(value)


class EncryptedBytes(TypeDecorator[bytes]):
    """Bytes (a stored HTTP answer), stored as one encrypted text of their base64."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> str | None:
        return None if value is None else box().encrypt(base64.b64encode(value).decode("ascii"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> bytes | None:
        return None if value is None else base64.b64decode(box().decrypt(value))


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON document, stored as one encrypted text."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else box().encrypt(json.dumps(value, separators=(",", ":")))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else open_json(value)


# Every encrypted column, by table: what ``hookpost rotate-key`` re-encrypts.
# Stored answers to keyed POSTs are among them: an app portal access answer holds its token.
ENCRYPTED_COLUMNS = {
    "endpoint": ("secret", "previous_secret", "headers", "url_credentials"),
    "destination": ("config", "secret", "previous_secret"),
    "idempotent_response": ("body",),
}


async def reencrypt_all(engine: AsyncEngine) -> int:
    """Re-encrypt every stored secret under the first key; the number of rows rewritten.

    One transaction: a rotation that fails half-way leaves everything as it was, readable
    with the same keys.
    """
    secret_box = box()
    rewritten = 0
    async with engine.begin() as connection:
        for table, columns in ENCRYPTED_COLUMNS.items():
            names = ", ".join(columns)
            rows = (await connection.execute(text(f"SELECT id, {names} FROM {table}"))).all()  # noqa: S608 - our names
            assignments = ", ".join(f"{column} = :{column}" for column in columns)
            update = text(f"UPDATE {table} SET {assignments} WHERE id = :id")  # noqa: S608 - our names
            for row_id, *values in rows:
                rotated = {
                    column: None if value is None else secret_box.rotate(value)
                    for column, value in zip(columns, values, strict=True)
                }
                await connection.execute(update, {**rotated, "id": row_id})
                rewritten += 1
    return rewritten


@dataclass(frozen=True)
class KeyCheck:
    """How many of a sample of stored secrets this process's keys open."""

    sampled: int
    opened: int


async def check_keys(engine: AsyncEngine, sample: int = 100) -> KeyCheck:
    """Try the configured keys on the newest endpoints' secrets: a process started with
    another key than the one they were stored under would fail every delivery to them."""
    secret_box = box()
    query = text("SELECT secret FROM endpoint WHERE secret LIKE :encrypted ORDER BY created_at DESC LIMIT :sample")
    async with engine.connect() as connection:
        stored = (await connection.execute(query, {"encrypted": PREFIX + "%", "sample": sample})).scalars().all()
    opened = 0
    for value in stored:
        try:
            secret_box.decrypt(value)
        except UnreadableSecret:
            continue
        opened += 1
    return KeyCheck(sampled=len(stored), opened=opened)
