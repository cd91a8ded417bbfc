"""Request dependencies: typed state and a commit-on-success session (who may call: auth.policy)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.state import AppState


# Dependencies are async even where they await nothing: FastAPI runs a plain ``def``
# dependency in the thread pool, a thread hop on every request for no gain.
async def get_state(request: Request) -> AppState:
    state: AppState = request.state.hookpost
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessionmaker() as session:
        yield session
        await session.commit()


# scope="function": the commit happens before the response goes out, so a client never
# sees a success for a write that then fails to commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
