"""Request dependencies: typed state, the admin token check, a commit-on-success session."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Receive, Scope, Send

from hookpost.api.errors import Unauthorized, error_response
from hookpost.api.lifespan import AppState


# Dependencies are async even where they await nothing: FastAPI runs a plain ``def``
# dependency in the thread pool, a thread hop on every request for no gain.
async def get_state(request: Request) -> AppState:
    state: AppState = request.state.hookpost
    return state


StateDep = Annotated[AppState, Depends(get_state)]

_bearer = HTTPBearer(auto_error=False, description="The admin token (HOOKPOST_ADMIN_TOKEN)")


def _token_problem(token: str | None, admin_token: str) -> str | None:
    """Why ``token`` (a bearer token, or None for none) does not authenticate, or None if it does."""
    if not token:
        return "Missing bearer token"
    # Constant-time, so the token cannot be guessed byte by byte from response times.
    if not secrets.compare_digest(token.encode(), admin_token.encode()):
        return "Invalid token"
    return None


async def require_admin(
    state: StateDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    problem = _token_problem(None if credentials is None else credentials.credentials, state.admin_token)
    if problem is not None:
        raise Unauthorized(problem)


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class AuthenticateBeforeBody:
    """The admin token checked before a request body under ``prefix`` is read.

    FastAPI parses a body before it runs a route's dependencies, so without this a caller
    with no token would learn from a 422 how its body was parsed. Requests without a body
    are left to ``require_admin``, which keeps every route's 401 (and 404 for unknown paths).
    """

    def __init__(self, app: ASGIApp, prefix: str, public_paths: frozenset[str], admin_token: str) -> None:
        self.app = app
        self.prefix = prefix
        self.public_paths = public_paths
        self.admin_token = admin_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in _BODY_METHODS
            and scope["path"].startswith(self.prefix)
            and scope["path"] not in self.public_paths
        ):
            problem = _token_problem(_bearer_token(scope), self.admin_token)
            if problem is not None:
                response = error_response(
                    Unauthorized.status_code, Unauthorized.code, problem, {"www-authenticate": "Bearer"}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessionmaker() as session:
        yield session
        await session.commit()


# scope="function": the commit happens before the response goes out, so a client never
# sees a success for a write that then fails to commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
