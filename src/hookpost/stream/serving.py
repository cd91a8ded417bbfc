"""Serving one application's live events over an open WebSocket: the caller checked once and
re-checked while the stream is open, the bus subscription relayed, and closes with a code (the
table in ``stream.router``). The API's stream route and the portal's share it."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
from fastapi import WebSocket
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.applications.service import find_application
from hookpost.auth.policy import Principal
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
