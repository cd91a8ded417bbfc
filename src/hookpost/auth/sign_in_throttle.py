"""Console sign-in throttled per client address: after ``console_sign_in_failures`` wrong
tokens within a window of ``console_sign_in_window`` seconds, every sign-in from that
address is refused (429) until the window ends, the right token too, so that the answer
says nothing of a guess.

Counted in the database, so every API process (and replica) shares the count. The address
is the one the server reports for the request: behind a proxy listed in FORWARDED_ALLOW_IPS,
the one it forwards. It is stored as a digest only.
"""

from __future__ import annotations

import hashlib
import time

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.settings import Settings
from hookpost.storage.models import SignInFailures

# Rows older than this are purged by the scheduler's maintenance (longer than any sane window).
KEEP_SECONDS = 24 * 3600


def _key(address: str) -> str:
    return hashlib.sha256(address.encode()).hexdigest()


def _window(settings: Settings, now: float) -> tuple[int, float]:
    """The current window's start (unix second) and end."""
    length = settings.console_sign_in_window
    start = int(now // length * length)
    return start, start + length


async def sign_in_wait(session: AsyncSession, settings: Settings, address: str) -> int:
    """Seconds until ``address`` may try to sign in again; 0 if it may now."""
    now = time.time()
    start, end = _window(settings, now)
    failures = await session.scalar(
        select(SignInFailures.count).where(SignInFailures.client == _key(address), SignInFailures.window_start == start)
    )
    if failures is None or failures < settings.console_sign_in_failures:
        return 0
    return max(1, int(end - now + 0.999))


async def count_failed_sign_in(session: AsyncSession, settings: Settings, address: str) -> None:
    start, _ = _window(settings, time.time())
    insert = sqlite_insert if settings.is_sqlite else postgresql_insert
    await session.execute(
        insert(SignInFailures)
        .values(client=_key(address), window_start=start, count=1)
        .on_conflict_do_update(
            index_elements=[SignInFailures.client, SignInFailures.window_start],
            set_={"count": SignInFailures.count + 1},
        )
    )
    await session.commit()


async def forget_old_sign_in_failures(session: AsyncSession) -> None:
    await session.execute(delete(SignInFailures).where(SignInFailures.window_start < int(time.time()) - KEEP_SECONDS))
