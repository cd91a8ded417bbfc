"""Request dependencies: typed state, the admin token check, a commit-on-success session."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.api.errors import Unauthorized
from hookpost.api.lifespan import AppState


# Dependencies are async even where they await nothing: FastAPI runs a plain ``def``
# dependency in the thread pool, a thread hop on every request for no gain.
async def get_state(request: Request) -> AppState:
    state: AppState = request.state.hookpost
    return state


StateDep = Annotated[AppState, Depends(get_state)]

_bearer = HTTPBearer(auto_error=False, description="The admin token (HOOKPOST_ADMIN_TOKEN)")


async def require_admin(
    state: StateDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    if credentials is None:
        raise Unauthorized("Missing bearer token")
    # Constant-time, so the token cannot be guessed byte by byte from response times.
    if not secrets.compare_digest(credentials.credentials.encode(), state.admin_token.encode()):
        raise Unauthorized("Invalid token")


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessionmaker() as session:
        yield session
        await session.commit()


# scope="function": the commit happens before the response goes out, so a client never
# sees a success for a write that then fails to commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
