from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from hookpost.api.dependencies import SessionDep
from hookpost.api.errors import error_responses
from hookpost.api.query import PageDep, UpsertPath
from hookpost.applications.dependencies import ApplicationDep
from hookpost.applications.schemas import ApplicationIn, ApplicationOut, ApplicationPatch
from hookpost.applications.service import (
    ApplicationFilters,
    application_page,
    create_application,
    delete_application,
    update_application,
    upsert_application,
)
from hookpost.kit.errors import Conflict, NotFound
from hookpost.kit.pagination import Ordering
from hookpost.kit.schemas import ListResponse

router = APIRouter(prefix="/app", tags=["Application"])


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
    filters = ApplicationFilters(
        exclude_no_endpoints=exclude_apps_with_no_endpoints,
        exclude_disabled_endpoints=exclude_apps_with_disabled_endpoints,
        exclude_svix_play_endpoints=exclude_apps_with_svix_play_endpoints,
    )
    result = await application_page(session, page, order, filters)
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
async def upsert(app_id: UpsertPath, data: ApplicationIn, session: SessionDep, response: Response) -> ApplicationOut:
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
