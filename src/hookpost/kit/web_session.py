"""Browser sessions for Hookpost's pages: a signed cookie, and signed double-submit CSRF tokens.

The session cookie holds who signed in (``subject``: ``admin`` for the console) and when,
signed with a key derived from the admin token, so every API process can check it and
changing the admin token ends every session. It is HttpOnly and SameSite: page scripts
never see it, and other sites' requests do not carry it.

CSRF: a random nonce in a second cookie, and in every form the nonce signed with the same
key (OWASP's "signed double-submit cookie"). A POST is accepted only when its form token
is a valid signature of the nonce in its cookie: another site can make the browser send the
cookie, but cannot read it nor forge the signature.

Nothing here knows of HTTP frameworks: the console (and later the app portal) read and
write the cookies, and hand their values here.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from itsdangerous import BadSignature, Signer, URLSafeTimedSerializer

SESSION_COOKIE = "hookpost_session"
CSRF_COOKIE = "hookpost_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
ADMIN_SUBJECT = "admin"  # the console's sessions: whoever signed in with the admin token


@dataclass(frozen=True, slots=True)
class WebSession:
    subject: str  # "admin" for the console; the app portal will name its application
    session_id: str
    expires_at: float | None = None  # Unix time, when sooner than the session's maximum age


class WebSessions:
    """Issues and checks session cookies and CSRF tokens with one secret."""

    def __init__(self, secret: str, max_age_seconds: float) -> None:
        self.max_age_seconds = max_age_seconds
        self._sessions = URLSafeTimedSerializer(secret, salt="hookpost.web-session")
        self._csrf = Signer(secret, salt="hookpost.csrf")

    def issue(self, subject: str, *, expires_at: float | None = None) -> str:
        """The cookie value of a new session for ``subject``, ending at ``expires_at`` if that is
        sooner than the maximum age (a session made from a token that expires ends with it)."""
        data: dict[str, Any] = {"sub": subject, "sid": secrets.token_urlsafe(16)}
        if expires_at is not None:
            data["exp"] = expires_at
        return self._sessions.dumps(data)

    def read(self, cookie: str | None) -> WebSession | None:
        """The session a cookie holds, or None if it is missing, forged or expired."""
        if not cookie:
            return None
        try:
            data: Any = self._sessions.loads(cookie, max_age=int(self.max_age_seconds))
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("sub"), str) or not isinstance(data.get("sid"), str):
            return None
        expires_at = data.get("exp")
        if expires_at is not None and (not isinstance(expires_at, int | float) or expires_at <= time.time()):
            return None
        return WebSession(subject=data["sub"], session_id=data["sid"], expires_at=expires_at)

    @staticmethod
    def new_csrf_nonce() -> str:
        return secrets.token_urlsafe(24)

    def csrf_token(self, nonce: str) -> str:
        """The token a form carries for the nonce in the browser's CSRF cookie."""
        return self._csrf.sign(nonce).decode()

    def csrf_valid(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token:
            return False
        try:
            signed = self._csrf.unsign(token).decode()
        except BadSignature:
            return False
        return hmac.compare_digest(signed.encode(), nonce.encode())


@lru_cache(maxsize=4)
def web_sessions(admin_token: str, max_age_seconds: float) -> WebSessions:
    """One per process and token: the signers derive their keys once."""
    return WebSessions(admin_token, max_age_seconds)
