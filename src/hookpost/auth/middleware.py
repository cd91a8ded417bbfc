"""The bearer token checked before a request body is read.

FastAPI parses a body before it runs a route's dependencies, so without this a caller with
no token would learn from a 422 how its body was parsed. Here a token is only checked to
name someone (the admin, or a live application-scoped token); what that caller may do is
still ``auth.policy.authorize``'s to say. Requests without a body are left to it alone,
which keeps every route's 401 (and 404 for unknown paths).
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Scope

from hookpost.api.errors import Unauthorized, error_response
from hookpost.auth.policy import is_admin_token
from hookpost.auth.service import find_token
from hookpost.state import AppState

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class AuthenticateBeforeBody:
    """Run by ``api.edge`` on every HTTP request before anything reads its body."""

    def __init__(self, prefix: str, public_paths: frozenset[str]) -> None:
        self.prefix = prefix
        self.public_paths = public_paths

    def checks(self, scope: Scope) -> bool:
        """Whether ``refusal`` checks this request's token: so, past it, the token names someone."""
        return (
            scope["method"] in _BODY_METHODS
            and scope["path"].startswith(self.prefix)
            and scope["path"] not in self.public_paths
        )

    async def refusal(self, scope: Scope) -> Response | None:
        """The 401 for a body-carrying API request whose token names no one, else None."""
        if self.checks(scope):
            problem = await _token_problem(scope)
            if problem is not None:
                return error_response(
                    Unauthorized.status_code, Unauthorized.code, problem, {"www-authenticate": "Bearer"}
                )
        return None


async def _token_problem(scope: Scope) -> str | None:
    """Why the request's bearer token names no one, or None if it names someone."""
    token = bearer_token(scope)
    if not token:
        return "Missing bearer token"
    state: AppState = scope["state"]["hookpost"]
    if is_admin_token(state.admin_token, token):
        return None  # the hot path: no database
    async with state.sessionmaker() as session:
        if await find_token(session, token) is None:
            return "Invalid token"
    return None


def bearer_token(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer`` header, else None."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None
