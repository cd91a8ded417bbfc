"""Page sessions ended on the server: signing out ends the session, not only the browser's cookie.

A session cookie is signed and stateless (kit/web_session.py), so a copy taken before
signing out would stay valid until its maximum age. Signing out records the session's id
here, and every check of a cookie also asks, by primary key, whether its session has ended.
Rows are kept only until the cookie would have expired anyway, then purged.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.kit.time import utcnow
from hookpost.kit.web_session import WebSession
from hookpost.storage.models import EndedWebSession


async def end_web_session(session: AsyncSession, web_session: WebSession, max_age_seconds: float) -> None:
    """Record ``web_session`` as ended; ending it twice is harmless."""
    # The cookie was issued before now, so it expires no later than now plus its maximum age.
    expires_at = utcnow() + timedelta(seconds=max_age_seconds)
    if web_session.expires_at is not None:
        expires_at = min(expires_at, datetime.fromtimestamp(web_session.expires_at, UTC))
    await session.merge(EndedWebSession(session_id=web_session.session_id, expires_at=expires_at))


async def web_session_ended(session: AsyncSession, session_id: str) -> bool:
    """Whether the session was ended on the server (one primary-key read)."""
    return await session.get(EndedWebSession, session_id) is not None


async def forget_expired_ended_sessions(session: AsyncSession) -> None:
    """Drop the ended sessions whose cookies have expired on their own: nothing can use them now."""
    await session.execute(delete(EndedWebSession).where(EndedWebSession.expires_at < utcnow()))
