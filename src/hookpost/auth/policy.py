"""Every API request's authorisation: who is calling, and may they call this route.

The admin token may call everything. A token from ``app-portal-access`` may call, on its own
application only, the operations its capabilities allow (``auth.capabilities``: the one table
of what each allows). Anything else (other applications, sending messages, admin routes,
routes added later) is the admin's alone.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.api.dependencies import StateDep
from hookpost.api.errors import HookpostError, TooManyRequests, Unauthorized
from hookpost.applications.service import find_application_id
from hookpost.auth.capabilities import ALL, READ_ONLY, Capability, allows, loaded, needed_for
from hookpost.auth.service import find_token
from hookpost.observability.requests import route_template
from hookpost.state import AppState
from hookpost.storage.models import AccessToken

API = "/api/v1"
# Why an operation no capability allows is the admin's, where a reason says more than "admin".
ADMIN_ONLY = {
    **{
        (method, "/app/{app_id}"): "Only the admin token may change or delete an application"
        for method in ("PUT", "PATCH", "DELETE")
    },
    # A customer's link must not mint events its own receivers would take for the operator's.
    ("POST", "/app/{app_id}/msg"): "Only the admin token may send messages",
}


class Forbidden(HookpostError):
    status_code = 403
    code = "forbidden"


@dataclass(frozen=True)
class Principal:
    """The caller: the admin (``app_id`` None), or a token scoped to one application."""

    app_id: str | None = None
    capabilities: frozenset[Capability] = ALL
    token: str | None = None  # the scoped token itself, for logout; never logged
    feature_flags: frozenset[str] = frozenset()  # of a scoped token: which flagged event types it sees

    @property
    def is_admin(self) -> bool:
        return self.app_id is None

    @property
    def held_flags(self) -> frozenset[str] | None:
        """The feature flags this caller holds; None for the admin, who holds every one."""
        return None if self.is_admin else self.feature_flags

    @property
    def read_only(self) -> bool:
        """A scoped token that may only look (``ViewBase`` alone)."""
        return not self.is_admin and self.capabilities <= READ_ONLY

    def sees(self, feature_flags: list[str] | None) -> bool:
        """Whether an event type behind these feature flags is visible (Svix: any one of them)."""
        return self.is_admin or not feature_flags or not self.feature_flags.isdisjoint(feature_flags)


ADMIN = Principal()

_bearer = HTTPBearer(auto_error=False, description="The admin token, or an app portal access token")


def is_admin_token(admin_token: str, token: str) -> bool:
    # Constant-time, so the admin token cannot be guessed byte by byte from response times.
    return secrets.compare_digest(token.encode(), admin_token.encode())


def principal_of(access: AccessToken, token: str | None = None) -> Principal:
    """The application-scoped caller a live token row stands for (the app portal's sessions hold
    the row's id, not the token: ``token`` is None for them)."""
    flags = frozenset(access.feature_flags or ())
    capabilities = loaded(access.capabilities)
    return Principal(app_id=access.app_id, capabilities=capabilities, token=token, feature_flags=flags)


async def scoped_principal(session: AsyncSession, token: str) -> Principal | None:
    """The application-scoped caller ``token`` names, or None if it names nobody."""
    access = await find_token(session, token)
    return None if access is None else principal_of(access, token)


async def owns(session: AsyncSession, principal: Principal, app_id_or_uid: str) -> bool:
    """Whether the scoped ``principal`` may act on the application a path names: resolved to an id
    as every route resolves it (``find_application_id``), then compared by id."""
    named = await find_application_id(session, app_id_or_uid)
    return named is not None and named == principal.app_id


def route_problem(principal: Principal, method: str, template: str) -> str | None:
    """Why a scoped token may not call this route, or None (the app portal asks it too, for the
    API operation each of its actions is)."""
    operation = ("GET" if method == "HEAD" else method, template.removeprefix(API))
    if allows(principal.capabilities, operation):
        return None
    needed = needed_for(operation)
    if not needed:
        return ADMIN_ONLY.get(operation, "This route needs the admin token")
    names = ", ".join(needed)
    if principal.read_only:
        return f"This token is read-only: this needs one of the capabilities {names}"
    return f"This token lacks the capability for this: one of {names}"


async def within_rate(state: AppState, principal: Principal) -> None:
    """Refuse a scoped caller beyond its application's requests per second (429 with Retry-After):
    one application's tokens and portal sessions, together, cannot take the API from the others."""
    limit = state.settings.app_api_rate_limit
    if not limit or principal.app_id is None:
        return
    if not await state.api_limiter.try_acquire(f"api:{principal.app_id}", limit):
        # Windows are whole seconds: the next one starts within a second.
        raise TooManyRequests(f"More than {limit} requests per second for this application", retry_after_seconds=1)


async def authorize(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise Unauthorized("Missing bearer token")
    token = credentials.credentials
    if is_admin_token(state.admin_token, token):
        return ADMIN  # the hot path: no database
    async with state.sessionmaker() as session:
        principal = await scoped_principal(session, token)
        if principal is None:
            raise Unauthorized("Invalid token")
        await within_rate(state, principal)
        problem = route_problem(principal, request.method, route_template(request.scope))
        if problem is not None:
            raise Forbidden(problem)
        app_id = request.path_params.get("app_id")
        if app_id is not None and not await owns(session, principal, app_id):
            raise Forbidden("This token is for another application")
    return principal


PrincipalDep = Annotated[Principal, Depends(authorize)]
