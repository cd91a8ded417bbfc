"""Application-scoped tokens: minted, found and revoked; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.auth.capabilities import Capability, stored
from hookpost.kit.ids import new_id
from hookpost.kit.time import as_utc, utcnow
from hookpost.storage.models import AccessToken, Application

TOKEN_PREFIX = "hp_app_"  # noqa: S105 - a prefix, not a secret


def token_hash(token: str) -> str:
    # 256 random bits: a fast hash is enough, nothing to slow down a guess of.
    return hashlib.sha256(token.encode()).hexdigest()


async def mint_token(
    session: AsyncSession,
    application: Application,
    *,
    capabilities: frozenset[Capability],
    expiry_seconds: int,
    feature_flags: list[str] | None = None,
) -> str:
    """A new token for ``application``; the caller gets it once, the database only its hash."""
    now = utcnow()
    await session.execute(delete(AccessToken).where(AccessToken.expires_at <= now))  # tidy as we go
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        AccessToken(
            id=new_id("tok"),
            token_hash=token_hash(token),
            app_id=application.id,
            capabilities=stored(capabilities),
            feature_flags=feature_flags,
            expires_at=now + timedelta(seconds=expiry_seconds),
            created_at=now,
        )
    )
    await session.flush()
    return token


def portal_link(public_url: str, request_base_url: str, token: str) -> str:
    """The app portal's address carrying ``token``: under HOOKPOST_PUBLIC_URL, else where the
    request came in. The token is in the fragment, which browsers never send, so no server or
    proxy logs it."""
    base = public_url.rstrip("/") or request_base_url.rstrip("/")
    return f"{base}/portal#key={token}"


async def find_token(session: AsyncSession, token: str) -> AccessToken | None:
    """The live (unexpired, unrevoked) token, or None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    return await session.scalar(
        select(AccessToken).where(AccessToken.token_hash == token_hash(token), AccessToken.expires_at > utcnow())
    )


async def find_token_by_id(session: AsyncSession, token_id: str) -> AccessToken | None:
    """The live token with this row id (what an app portal session holds), or None."""
    access = await session.get(AccessToken, token_id)
    return access if access is not None and as_utc(access.expires_at) > utcnow() else None


async def revoke_token(session: AsyncSession, token: str) -> None:
    await session.execute(delete(AccessToken).where(AccessToken.token_hash == token_hash(token)))


async def revoke_token_by_id(session: AsyncSession, token_id: str) -> None:
    """Revoke the token an app portal session holds (its row id): the session ends with it."""
    await session.execute(delete(AccessToken).where(AccessToken.id == token_id))


async def expire_tokens(session: AsyncSession, app_id: str, expiry_seconds: int) -> None:
    """End every token of the application, and so every portal session opened with one: at once,
    or after ``expiry_seconds`` (a token due to expire sooner keeps its own time)."""
    if expiry_seconds == 0:
        await session.execute(delete(AccessToken).where(AccessToken.app_id == app_id))
        return
    ends_at = utcnow() + timedelta(seconds=expiry_seconds)
    await session.execute(
        update(AccessToken)
        .where(AccessToken.app_id == app_id, AccessToken.expires_at > ends_at)
        .values(expires_at=ends_at)
    )
