from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import exists, select

from hookpost.api.dependencies import SessionDep
from hookpost.api.errors import Conflict, NotFound, error_responses
from hookpost.applications.schemas import ApplicationIn, ApplicationOut, ApplicationPatch
from hookpost.applications.service import (
    OPERATIONAL_APP_ID,
    ApplicationDep,
    create_application,
    delete_application,
    update_application,
    upsert_application,
)
from hookpost.kit.pagination import Ordering, PageDep, paginate
from hookpost.kit.schemas import ListResponse
from hookpost.storage.models import Application, Endpoint

router = APIRouter(prefix="/app", tags=["Application"])

# Where Svix Play (Svix's hosted request inspector) receives webhooks.
SVIX_PLAY = "https://play.svix.com/"


@router.get("", response_model=ListResponse[ApplicationOut], responses=error_responses())
async def list_applications(
    session: SessionDep,
    page: PageDep,
    order: Ordering = Ordering.ASCENDING,
    exclude_apps_with_no_endpoints: Annotated[
        bool, Query(description="Leave out applications without endpoints")
    ] = False,
    exclude_apps_with_disabled_endpoints: Annotated[
        bool, Query(description="Leave out applications with a disabled endpoint")
    ] = False,
    exclude_apps_with_svix_play_endpoints: Annotated[
        bool, Query(description="Leave out applications with an endpoint on Svix Play")
    ] = False,
) -> ListResponse[ApplicationOut]:
    query = select(Application).where(Application.id != OPERATIONAL_APP_ID)
    if exclude_apps_with_no_endpoints:
        query = query.where(exists().where(Endpoint.app_id == Application.id))
    if exclude_apps_with_disabled_endpoints:
        query = query.where(~exists().where(Endpoint.app_id == Application.id, Endpoint.disabled.is_(True)))
    if exclude_apps_with_svix_play_endpoints:
        query = query.where(~exists().where(Endpoint.app_id == Application.id, Endpoint.url.startswith(SVIX_PLAY)))
    result = await paginate(session, query, Application.id, page, order)
    return result.response(ApplicationOut.model_validate)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApplicationOut,
    responses=error_responses(Conflict)
    | {200: {"model": ApplicationOut, "description": "Existing application (get_if_exists)"}},
)
async def create(
    data: ApplicationIn,
    session: SessionDep,
    response: Response,
    get_if_exists: Annotated[bool, Query(description="Return the application with this uid if it exists")] = False,
) -> ApplicationOut:
    application, created = await create_application(session, data, get_if_exists=get_if_exists)
    if not created:
        response.status_code = status.HTTP_200_OK
    return ApplicationOut.model_validate(application)


@router.get("/{app_id}", response_model=ApplicationOut, responses=error_responses(NotFound))
async def get(application: ApplicationDep) -> ApplicationOut:
    return ApplicationOut.model_validate(application)


@router.put(
    "/{app_id}",
    response_model=ApplicationOut,
    responses=error_responses(NotFound, Conflict) | {201: {"model": ApplicationOut, "description": "Created"}},
)
async def upsert(app_id: str, data: ApplicationIn, session: SessionDep, response: Response) -> ApplicationOut:
    application, created = await upsert_application(session, app_id, data)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return ApplicationOut.model_validate(application)


@router.patch("/{app_id}", response_model=ApplicationOut, responses=error_responses(NotFound, Conflict))
async def patch(application: ApplicationDep, data: ApplicationPatch, session: SessionDep) -> ApplicationOut:
    return ApplicationOut.model_validate(await update_application(session, application, data))


@router.delete("/{app_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(NotFound))
async def delete(application: ApplicationDep, session: SessionDep) -> None:
    await delete_application(session, application)
