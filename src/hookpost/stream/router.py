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

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
from fastapi import APIRouter, WebSocket
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.applications.service import find_application
from hookpost.auth.policy import ADMIN, Principal, is_admin_token, scoped_principal
from hookpost.auth.web_sessions import web_session_ended
from hookpost.kit.web_session import ADMIN_SUBJECT, SESSION_COOKIE, web_sessions
from hookpost.state import AppState
from hookpost.storage.database import database_unavailable
from hookpost.stream import events
from hookpost.stream.bus import StreamUnavailable, Subscription

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_INTERNAL_ERROR = 1011

router = APIRouter(tags=["Stream"])

StillValid = Callable[[AsyncSession], Awaitable[bool]]


@dataclass(frozen=True)
class StreamCaller:
    """Who opened a stream, and how to tell, while it is open, that their access has ended
    (None: it cannot end, as the admin token's)."""

    principal: Principal
    still_valid: StillValid | None = None


# Who the client is (from its handshake), or why it is no one.
Authenticate = Callable[[WebSocket, AppState, AsyncSession], Awaitable[StreamCaller | str]]


def same_origin(websocket: WebSocket) -> bool:
    """Whether the handshake comes from a page of this origin. Browsers send cookies with a
    WebSocket handshake from any page, so a cookie-authorised stream needs it (Cross-Site
    WebSocket Hijacking); the cookies are SameSite as well."""
    origin = websocket.headers.get("origin")
    host = websocket.headers.get("host")
    return origin is not None and host is not None and urlsplit(origin).netloc.lower() == host.lower()


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


async def serve_stream(websocket: WebSocket, app_id: str, authenticate: Authenticate) -> None:
    """The stream of one application to the caller ``authenticate`` finds, under the rules of a
    scoped token: only its own application, and closed once its access ends."""
    state: AppState = websocket.state.hookpost
    await websocket.accept()
    try:
        async with state.sessionmaker() as session:
            caller = await authenticate(websocket, state, session)
            application = None if isinstance(caller, str) else await find_application(session, app_id)
        if isinstance(caller, str):
            await websocket.close(CLOSE_UNAUTHORIZED, caller)
            return
        principal = caller.principal
        if application is None:
            await websocket.close(CLOSE_NOT_FOUND, "Application not found")
            return
        if not principal.is_admin and application.id != principal.app_id:
            await websocket.close(CLOSE_FORBIDDEN, "This token is for another application")
            return
        async with state.events.subscribe(application.id) as subscription:
            await websocket.send_text(events.hello(application.id, os.getpid()))
            interval = state.settings.stream_token_check_interval
            revoked = await _relay(websocket, subscription, _access_check(state, caller.still_valid), interval)
        if revoked:
            await _close_quietly(websocket, CLOSE_UNAUTHORIZED, "Token revoked or expired")
    except StreamUnavailable as error:
        logger.warning("live stream for %s refused: %s", app_id, error)
        await _close_quietly(websocket, CLOSE_TRY_AGAIN_LATER, "Live stream unavailable, try again later")
    except Exception as error:
        if _database_unavailable(error):  # the token or the application could not be read
            logger.warning("live stream for %s closed: database unavailable: %s", app_id, type(error).__name__)
            await _close_quietly(websocket, CLOSE_TRY_AGAIN_LATER, "Database unavailable, try again later")
            return
        logger.exception("live stream for %s failed", app_id)
        await _close_quietly(websocket, CLOSE_INTERNAL_ERROR, "Internal error")


def _database_unavailable(error: BaseException) -> bool:
    """Whether the database could not be reached, at the start or in an open stream's token
    check (which fails inside the relay's task group, so it comes wrapped in a group)."""
    if isinstance(error, BaseExceptionGroup):
        return any(_database_unavailable(inner) for inner in error.exceptions)
    return database_unavailable(error)


TokenCheck = Callable[[], Awaitable[bool]]


def _access_check(state: AppState, still_valid: StillValid | None) -> TokenCheck | None:
    """Whether the caller's access is still live, each time in a session of its own; None if it cannot end."""
    if still_valid is None:
        return None
    check = still_valid

    async def checked() -> bool:
        async with state.sessionmaker() as session:  # one indexed read per check
            return await check(session)

    return checked


async def _relay(
    websocket: WebSocket, subscription: Subscription, token_check: TokenCheck | None, interval: float
) -> bool:
    """Send the subscription's events until the client leaves or can no longer be sent to,
    or until ``token_check`` (every ``interval`` seconds) finds the token revoked or expired:
    then True, for the caller to close the connection."""
    revoked = False
    async with anyio.create_task_group() as group:

        async def send() -> None:
            try:
                while True:
                    await websocket.send_text(await subscription.get())
            except Exception as error:
                logger.debug("live stream: client gone while sending: %r", error)
            group.cancel_scope.cancel()

        async def watch() -> None:
            # Clients have nothing to say: what they send is read, to see them leave, and ignored.
            try:
                while (await websocket.receive())["type"] != "websocket.disconnect":
                    pass
            except Exception as error:
                logger.debug("live stream: client gone while reading: %r", error)
            group.cancel_scope.cancel()

        async def recheck(still_valid: TokenCheck) -> None:
            nonlocal revoked
            while not revoked:
                await anyio.sleep(interval)
                revoked = not await still_valid()
            group.cancel_scope.cancel()

        group.start_soon(send)
        group.start_soon(watch)
        if token_check is not None:
            group.start_soon(recheck, token_check)
    return revoked


async def _close_quietly(websocket: WebSocket, code: int, reason: str) -> None:
    try:
        await websocket.close(code, reason)
    except Exception:
        logger.debug("live stream: close %d not sent, the client is gone", code)
