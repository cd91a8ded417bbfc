"""``/api/v1/event-type``: the event type catalogue, and its OpenAPI import and export."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from hookpost import __version__
from hookpost.api.dependencies import SessionDep
from hookpost.api.errors import error_responses
from hookpost.api.query import PageDep
from hookpost.auth.policy import PrincipalDep
from hookpost.event_types.dependencies import EventTypeDep
from hookpost.event_types.openapi import spec_from_event_types
from hookpost.event_types.schemas import (
    EventTypeImportOpenApiIn,
    EventTypeImportOpenApiOut,
    EventTypeIn,
    EventTypeOut,
    EventTypePatch,
    EventTypeUpdate,
)
from hookpost.event_types.service import (
    all_event_types,
    create_event_type,
    delete_event_type,
    event_type_out,
    event_type_page,
    import_openapi,
    update_event_type,
    upsert_event_type,
)
from hookpost.kit.errors import Conflict, NotFound
from hookpost.kit.pagination import Ordering
from hookpost.kit.schemas import ListResponse
from hookpost.kit.validation import NAME_MAX_LENGTH, NAME_PATTERN

router = APIRouter(prefix="/event-type", tags=["Event Type"])
_NOT_FOUND = error_responses(NotFound)

NewName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=NAME_MAX_LENGTH, description="The event type's name")]
IncludeArchived = Annotated[bool, Query(description="Include archived (deleted, not expunged) event types")]


@router.get("", response_model=ListResponse[EventTypeOut], responses=error_responses())
async def list_event_types(
    principal: PrincipalDep,
    session: SessionDep,
    page: PageDep,
    order: Ordering = Ordering.ASCENDING,
    include_archived: IncludeArchived = False,
    with_content: Annotated[bool, Query(description="Include each event type's schemas")] = False,
) -> ListResponse[EventTypeOut]:
    """By name."""
    flags = None if principal.is_admin else principal.feature_flags
    result = await event_type_page(session, page, order, include_archived=include_archived, feature_flags=flags)
    return result.response(lambda event_type: event_type_out(event_type, with_content=with_content))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=EventTypeOut, responses=error_responses(Conflict))
async def create(data: EventTypeIn, session: SessionDep) -> EventTypeOut:
    """Create an event type, or bring back an archived one of that name with these fields."""
    return event_type_out(await create_event_type(session, data))


@router.post("/import/openapi", response_model=EventTypeImportOpenApiOut, responses=error_responses())
async def import_from_openapi(data: EventTypeImportOpenApiIn, session: SessionDep) -> EventTypeImportOpenApiOut:
    """Create or update one event type per webhook of an OpenAPI 3.1 document."""
    return EventTypeImportOpenApiOut(data=await import_openapi(session, data))


@router.get("/export/openapi", responses=error_responses())
async def export_to_openapi(session: SessionDep, include_archived: IncludeArchived = False) -> dict[str, Any]:
    """Every event type as an OpenAPI 3.1 document's ``webhooks`` (what the import reads)."""
    event_types = await all_event_types(session, include_archived=include_archived)
    return spec_from_event_types(event_types, "Hookpost event types", __version__)


@router.get("/{event_type_name}", response_model=EventTypeOut, responses=_NOT_FOUND)
async def get(event_type: EventTypeDep, principal: PrincipalDep) -> EventTypeOut:
    if not principal.sees(event_type.feature_flags):
        raise NotFound("Event type not found")
    return event_type_out(event_type)


@router.put(
    "/{event_type_name}",
    response_model=EventTypeOut,
    responses=error_responses() | {201: {"model": EventTypeOut, "description": "Created"}},
)
async def upsert(
    event_type_name: NewName, data: EventTypeUpdate, session: SessionDep, response: Response
) -> EventTypeOut:
    event_type, created = await upsert_event_type(session, event_type_name, data)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return event_type_out(event_type)


@router.patch("/{event_type_name}", response_model=EventTypeOut, responses=_NOT_FOUND)
async def patch(event_type: EventTypeDep, data: EventTypePatch, session: SessionDep) -> EventTypeOut:
    return event_type_out(await update_event_type(session, event_type, data))


@router.delete("/{event_type_name}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def delete(
    event_type: EventTypeDep,
    session: SessionDep,
    expunge: Annotated[bool, Query(description="Delete it entirely instead of archiving it")] = False,
) -> None:
    """Archive the event type: endpoints filtering on it keep doing so; new filters may not name it."""
    await delete_event_type(session, event_type, expunge=expunge)
