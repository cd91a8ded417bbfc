"""The stored answers to keyed POSTs: claim a key, finish it with the answer, or let it go."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookpost.kit.time import utcnow
from hookpost.storage.models import IdempotentResponse

# As Svix: an answer is kept for twelve hours.
KEEP_FOR = timedelta(hours=12)


def digest(*parts: bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))  # length-prefixed: no two splits hash alike
        hasher.update(part)
    return hasher.hexdigest()


@dataclass(frozen=True)
class Answer:
    status_code: int
    content_type: str | None
    body: bytes


@dataclass(frozen=True)
class Record:
    """What is stored for a key someone sent first."""

    request_hash: str
    answer: Answer | None  # None while that first request is still being answered


async def claim(sessionmaker: async_sessionmaker[AsyncSession], record_id: str, request_hash: str) -> Record | None:
    """None when the key is now ours (answer, then ``finish`` or ``release``); else what holds it."""
    async with sessionmaker() as session:
        for _ in range(3):  # again if the holder let go (or expired) between our insert and our read
            now = utcnow()
            try:
                # Expired answers go as new keys come: cheap on the expiry index.
                await session.execute(delete(IdempotentResponse).where(IdempotentResponse.expires_at < now))
                session.add(IdempotentResponse(id=record_id, request_hash=request_hash, expires_at=now + KEEP_FOR))
                await session.commit()
                return None
            except IntegrityError:
                await session.rollback()
            record = await read(sessionmaker, record_id)
            if record is not None:
                return record
    raise RuntimeError(f"idempotency record {record_id} could be neither claimed nor read")


async def read(sessionmaker: async_sessionmaker[AsyncSession], record_id: str) -> Record | None:
    async with sessionmaker() as session:
        row = await session.scalar(
            select(IdempotentResponse).where(
                IdempotentResponse.id == record_id, IdempotentResponse.expires_at >= utcnow()
            )
        )
        await session.commit()
    if row is None:
        return None
    answer = None if row.status_code is None else Answer(row.status_code, row.content_type, row.body or b"")
    return Record(row.request_hash, answer)


async def finish(sessionmaker: async_sessionmaker[AsyncSession], record_id: str, answer: Answer) -> None:
    async with sessionmaker() as session:
        await session.execute(
            update(IdempotentResponse)
            .where(IdempotentResponse.id == record_id)
            .values(status_code=answer.status_code, content_type=answer.content_type, body=answer.body)
        )
        await session.commit()


async def release(sessionmaker: async_sessionmaker[AsyncSession], record_id: str) -> None:
    """Forget a claim whose request failed on our side, so a retry with the key runs again."""
    async with sessionmaker() as session:
        await session.execute(delete(IdempotentResponse).where(IdempotentResponse.id == record_id))
        await session.commit()
