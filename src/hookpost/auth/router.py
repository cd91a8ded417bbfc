"""``/api/v1/auth``: app portal access tokens, and logging a token out."""

from fastapi import APIRouter, Request, status

from hookpost.api.dependencies import SessionDep, StateDep
from hookpost.api.errors import HookpostError, error_responses
from hookpost.applications.dependencies import ApplicationDep
from hookpost.applications.service import find_or_create_application
from hookpost.auth.policy import Forbidden, PrincipalDep
from hookpost.auth.schemas import ApplicationTokenExpireIn, AppPortalAccessIn, AppPortalAccessOut
from hookpost.auth.service import expire_tokens, mint_token, portal_link, revoke_token
from hookpost.kit.errors import NotFound

router = APIRouter(prefix="/auth", tags=["Authentication"])


class AdminLogout(HookpostError):
    code = "admin_token"


@router.post(
    "/app-portal-access/{app_id}", response_model=AppPortalAccessOut, responses=error_responses(NotFound, Forbidden)
)
async def app_portal_access(
    app_id: str, data: AppPortalAccessIn, session: SessionDep, state: StateDep, request: Request
) -> AppPortalAccessOut:
    """A token for one application's routes and live stream, and the portal link that carries it."""
    application = await find_or_create_application(session, app_id, data.application)
    if application is None:
        raise NotFound("Application not found (send `application` to create it)")
    token = await mint_token(
        session, application, capabilities=data.granted(), expiry_seconds=data.expiry, feature_flags=data.feature_flags
    )
    return AppPortalAccessOut(url=portal_link(state.settings.public_url, str(request.base_url), token), token=token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(AdminLogout))
async def logout(principal: PrincipalDep, session: SessionDep) -> None:
    """Revoke the token this request carries; it is refused from now on."""
    if principal.token is None:
        raise AdminLogout("The admin token comes from configuration: change HOOKPOST_ADMIN_TOKEN to revoke it")
    await revoke_token(session, principal.token)


@router.post(
    "/app/{app_id}/expire-all", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(NotFound, Forbidden)
)
async def expire_all(application: ApplicationDep, data: ApplicationTokenExpireIn, session: SessionDep) -> None:
    """End every token of the application and every app portal session opened with one (at once,
    or after ``expiry`` seconds): Svix's ``authentication.expire_all``. The admin's alone."""
    await expire_tokens(session, application.id, data.expiry)
