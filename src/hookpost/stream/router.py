"""``GET /api/v1/app/{app_id}/stream``: an application's live events over WebSocket.

The handshake always completes, and a refusal is a close code with a reason: a browser
sees nothing of a refused handshake but an error, whatever the cause.

=====  ============================================================================
4401   missing or wrong token (``Authorization: Bearer`` or ``?token=``), or, from the
       console's pages, no signed-in console session or a page of another origin (the app
       portal's pages use ``/portal/app/{app_id}/stream`` and its session, the same way); on
       an open stream, its app portal token or session was revoked or expired, or its console
       session signed out (checked every ``HOOKPOST_STREAM_TOKEN_CHECK_INTERVAL`` seconds)
4403   an app portal access token for another application
4404   no application with that id or uid
1013   the event bus (Redis) cannot take a new client right now, or the database cannot
       be reached to check the token (on an open stream too); try again later
1011   an unexpected error, logged on the server
1012   the API process is restarting or stopping (sent by the server); reconnect
=====  ============================================================================
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.auth.policy import ADMIN, is_admin_token, scoped_principal
from hookpost.auth.web_sessions import web_session_ended
from hookpost.kit.web_session import ADMIN_SUBJECT, SESSION_COOKIE, web_sessions
from hookpost.state import AppState
from hookpost.stream.serving import StreamCaller, same_origin, serve_stream

router = APIRouter(tags=["Stream"])


async def _console_caller(websocket: WebSocket, state: AppState, session: AsyncSession) -> StreamCaller | str:
    """The console's signed-in admin (until they sign out), or why a client without a token is not."""
    if not state.settings.console_enabled or not same_origin(websocket):
        return "Missing bearer token (Authorization header or token query parameter)"
    sessions = web_sessions(state.admin_token, state.settings.console_session_hours * 3600)
    web_session = sessions.read(websocket.cookies.get(SESSION_COOKIE))
    if (
        web_session is None
        or web_session.subject != ADMIN_SUBJECT
        or await web_session_ended(session, web_session.session_id)
    ):
        return "Console session missing or expired: sign in again"
    session_id = web_session.session_id

    async def still_valid(session: AsyncSession) -> bool:  # signing out closes the open stream too
        return not await web_session_ended(session, session_id)

    return StreamCaller(ADMIN, still_valid)


async def _authenticate(websocket: WebSocket, state: AppState, session: AsyncSession) -> StreamCaller | str:
    """Who the client is, or why it is no one. A header wins over the query, a token over a cookie."""
    header = websocket.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return "Authorization must be a Bearer token"
        token = token.strip()
    else:
        query_token = websocket.query_params.get("token")
        if query_token is None:
            return await _console_caller(websocket, state, session)
        token = query_token
    if is_admin_token(state.admin_token, token):
        return StreamCaller(ADMIN)
    principal = await scoped_principal(session, token)
    if principal is None:
        return "Invalid token"

    async def still_valid(session: AsyncSession) -> bool:
        return await scoped_principal(session, token) is not None

    return StreamCaller(principal, still_valid)


@router.websocket("/app/{app_id}/stream")
async def stream(websocket: WebSocket, app_id: str) -> None:
    """Sends ``stream.hello``, then every event of the application as it happens (docs/live-stream.md)."""
    await serve_stream(websocket, app_id, _authenticate)
