"""Browser sessions and CSRF tokens (kit/web_session.py), as the console and portal rely on them."""

from __future__ import annotations

import time

from hookpost.kit.web_session import WebSessions

SECRET = "an-admin-token-of-enough-length"


def test_a_session_reads_back_and_nothing_else_does() -> None:
    sessions = WebSessions(SECRET, 3600)
    cookie = sessions.issue("admin")
    session = sessions.read(cookie)
    assert session is not None
    assert session.subject == "admin"
    assert sessions.read(sessions.issue("admin")).session_id != session.session_id  # type: ignore[union-attr]
    assert sessions.read(None) is None
    assert sessions.read("") is None
    # The signature's first character: its last one may carry only base64's spare bits.
    value, _, signature = cookie.rpartition(".")
    forged = f"{value}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    assert sessions.read(forged) is None
    assert sessions.read("admin") is None


def test_another_secret_reads_no_session() -> None:
    """Changing the admin token ends every session."""
    cookie = WebSessions(SECRET, 3600).issue("admin")
    assert WebSessions(SECRET + "-rotated", 3600).read(cookie) is None


def test_a_session_ends_at_its_own_expiry() -> None:
    sessions = WebSessions(SECRET, 3600)
    ended = sessions.issue("portal:app_1", expires_at=time.time() - 1)
    assert sessions.read(ended) is None
    later = time.time() + 60
    live = sessions.read(sessions.issue("portal:app_1", expires_at=later))
    assert live is not None
    assert live.expires_at == later


def test_a_csrf_token_is_valid_only_for_its_own_nonce() -> None:
    sessions = WebSessions(SECRET, 3600)
    nonce, other = sessions.new_csrf_nonce(), sessions.new_csrf_nonce()
    token = sessions.csrf_token(nonce)
    assert sessions.csrf_valid(nonce, token)
    assert not sessions.csrf_valid(other, token)
    assert not sessions.csrf_valid(nonce, None)
    assert not sessions.csrf_valid(None, token)
    assert not sessions.csrf_valid(nonce, nonce)  # the nonce itself is not a token
    assert not sessions.csrf_valid(nonce, WebSessions(SECRET + "x", 3600).csrf_token(nonce))
