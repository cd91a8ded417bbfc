"""The console's event type pages: the catalogue (GET and POST /api/v1/event-type) and one event
type (PATCH, and DELETE with or without ``expunge``), through event_types' service and schemas,
so a form is refused for what the API refuses, in the same words.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response

from hookpost.api.dependencies import SessionDep
from hookpost.console.web import ConsoleRoute, check_csrf, render, require_admin_session
from hookpost.event_types.dependencies import EventTypeDep
from hookpost.event_types.schemas import EventTypeIn, EventTypePatch, newest_schema
from hookpost.event_types.service import create_event_type, delete_event_type, event_type_page, update_event_type
from hookpost.kit.errors import InvalidInput
from hookpost.kit.pagination import Ordering, PageParams
from hookpost.pages.forms import Iterator, notice, see_other
from hookpost.pages.views import PAGE_SIZE, Done
from hookpost.storage.models import EventType

HERE = "/console/event-type"
router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
pages = APIRouter(prefix=HERE, route_class=ConsoleRoute, dependencies=[Depends(require_admin_session)])
actions = APIRouter(
    prefix=HERE, route_class=ConsoleRoute, dependencies=[Depends(require_admin_session), Depends(check_csrf)]
)


def schemas_from_form(text: str, current: dict[str, Any] | None) -> dict[str, Any] | None:
    """The event type's schemas with the form's JSON as its newest version (version 1 if it had
    none; older versions kept); an empty field removes every schema. Whether it is a JSON Schema
    is the API's check (EventTypeIn, EventTypePatch); here only whether it is JSON at all."""
    if not text.strip():
        return None
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise InvalidInput(("json_schema",), f"not valid JSON ({error.msg} at {where})", "json_invalid") from None
    version = max(current, key=int) if current else "1"
    return {**(current or {}), version: schema}


def _path(event_type: EventType) -> str:
    return f"{HERE}/{event_type.name}"


@pages.get("")
async def event_types(request: Request, session: SessionDep, iterator: Iterator = None, done: Done = None) -> Response:
    """GET /api/v1/event-type?include_archived=true: archived ones too, so they may be brought back."""
    result = await event_type_page(session, PageParams(PAGE_SIZE, iterator), Ordering.ASCENDING, include_archived=True)
    return render(request, "event_types.html", {"page": result, "notice": notice(done)})


@actions.post("")
async def create_event_type_action(
    session: SessionDep,
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    json_schema: Annotated[str, Form()] = "",
) -> Response:
    """POST /api/v1/event-type (an archived one of that name comes back with these fields)."""
    data = EventTypeIn(name=name.strip(), description=description, schemas=schemas_from_form(json_schema, None))
    event_type = await create_event_type(session, data)
    return see_other(_path(event_type) + "?done=created")


@pages.get("/{event_type_name}")
async def event_type(request: Request, event_type: EventTypeDep, done: Done = None) -> Response:
    """GET /api/v1/event-type/{name}: its fields, and the forms that change it."""
    schemas = event_type.schemas or {}
    newest = newest_schema(schemas)
    context = {
        "event_type": event_type,
        "schema_text": json.dumps(newest, indent=2, ensure_ascii=False) if newest is not None else "",
        "versions": sorted(schemas, key=int),
        "notice": notice(done),
    }
    return render(request, "event_type.html", context)


@actions.post("/{event_type_name}")
async def update_event_type_action(
    event_type: EventTypeDep,
    session: SessionDep,
    description: Annotated[str, Form()] = "",
    json_schema: Annotated[str, Form()] = "",
) -> Response:
    """PATCH /api/v1/event-type/{name} with its description and schemas."""
    data = EventTypePatch(description=description, schemas=schemas_from_form(json_schema, event_type.schemas))
    await update_event_type(session, event_type, data)
    return see_other(_path(event_type) + "?done=saved")


@actions.post("/{event_type_name}/archived")
async def set_archived_action(
    event_type: EventTypeDep, session: SessionDep, archived: Annotated[bool, Form()]
) -> Response:
    """DELETE /api/v1/event-type/{name} (archive), or PATCH it with ``archived: false`` (bring back)."""
    if archived:
        await delete_event_type(session, event_type, expunge=False)
    else:
        await update_event_type(session, event_type, EventTypePatch(archived=False))
    return see_other(_path(event_type) + ("?done=archived" if archived else "?done=unarchived"))


@pages.get("/{event_type_name}/delete")
async def delete_event_type_page(request: Request, event_type: EventTypeDep) -> Response:
    """The step before DELETE /api/v1/event-type/{name}?expunge=true, with a button to confirm."""
    here = _path(event_type)
    consequence = (
        "It is deleted entirely, with its description and schema, and endpoint forms no longer offer it. "
        "Archiving it instead (on its page) keeps it, to bring back later. This cannot be undone."
    )
    context = {
        "kind": "event type",
        "name": event_type.name,
        "action": f"{here}/delete",
        "back": here,
        "crumbs": [(HERE, "Event types")],
        "consequence": consequence,
    }
    return render(request, "confirm_delete.html", context)


@actions.post("/{event_type_name}/delete")
async def delete_event_type_action(event_type: EventTypeDep, session: SessionDep) -> Response:
    """DELETE /api/v1/event-type/{name}?expunge=true, confirmed."""
    await delete_event_type(session, event_type, expunge=True)
    return see_other(f"{HERE}?done=event-type-deleted")


router.include_router(pages)
router.include_router(actions)
