"""The live stream of the portal's pages: ``/portal/app/{app_id}/stream``, where the portal's
cookie (Path=/portal) goes, authorised by the portal session as the API's stream authorises the
access token behind it: only its application's events, and closed once the token expires or is
revoked (re-checked as for a token). The token itself is never sent: the cookie holds its id.
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.auth.policy import principal_of
from hookpost.auth.service import find_token_by_id
from hookpost.portal.web import PORTAL_PATH, SESSION_COOKIE, SESSION_ENDED, session_token_id
from hookpost.state import AppState
from hookpost.stream.serving import StreamCaller, same_origin, serve_stream

router = APIRouter(prefix=PORTAL_PATH)


async def portal_caller(websocket: WebSocket, state: AppState, session: AsyncSession) -> StreamCaller | str:
    """The portal session's application-scoped caller, or why there is none."""
    if not same_origin(websocket):
        return "The portal's stream is for the portal's own pages"
    token_id = session_token_id(state.admin_token, websocket.cookies.get(SESSION_COOKIE))
    if token_id is None:
        return SESSION_ENDED
    access = await find_token_by_id(session, token_id)
    if access is None:
        return SESSION_ENDED
    live_token_id = token_id

    async def still_valid(session: AsyncSession) -> bool:
        return await find_token_by_id(session, live_token_id) is not None

    return StreamCaller(principal_of(access), still_valid)


@router.websocket("/app/{app_id}/stream")
async def portal_stream(websocket: WebSocket, app_id: str) -> None:
    """What the API's stream sends, to the portal's pages (console.js keeps them live with it)."""
    await serve_stream(websocket, app_id, portal_caller)
