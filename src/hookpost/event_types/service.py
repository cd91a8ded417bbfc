"""The event type catalogue: CRUD, what endpoints may filter on, and payload checks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Any

from fastapi import Depends, Path
from fastapi.exceptions import RequestValidationError
from jsonschema.validators import validator_for
from pydantic import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.api.dependencies import SessionDep
from hookpost.api.errors import Conflict, NotFound
from hookpost.event_types.openapi import SpecError, event_types_from_spec, parse_spec
from hookpost.event_types.schemas import (
    EventTypeImportOpenApiIn,
    EventTypeImportOpenApiOutData,
    EventTypeIn,
    EventTypeOut,
    EventTypePatch,
    EventTypeUpdate,
    newest_schema,
)
from hookpost.kit.filters import json_list_empty, json_list_has
from hookpost.kit.pagination import Ordering, Page, PageParams, paginate
from hookpost.storage.models import EventType


def invalid(loc: Sequence[str | int], msg: str, kind: str) -> RequestValidationError:
    """A 422 in the API's validation shape, naming the field at ``loc``."""
    return RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": kind}])


def event_type_out(event_type: EventType, *, with_content: bool = True) -> EventTypeOut:
    flags = event_type.feature_flags
    return EventTypeOut(
        name=event_type.name,
        description=event_type.description,
        archived=event_type.archived,
        deprecated=event_type.deprecated,
        schemas=event_type.schemas if with_content else None,
        group_name=event_type.group_name,
        feature_flags=flags,
        feature_flag=flags[0] if flags else None,
        created_at=event_type.created_at,
        updated_at=event_type.updated_at,
    )


async def get_event_type(
    session: SessionDep, event_type_name: Annotated[str, Path(description="The event type's name")]
) -> EventType:
    event_type = await session.get(EventType, event_type_name)
    if event_type is None:
        raise NotFound("Event type not found")
    return event_type


EventTypeDep = Annotated[EventType, Depends(get_event_type)]


async def event_type_page(
    session: AsyncSession,
    page: PageParams,
    order: Ordering,
    *,
    include_archived: bool = False,
    feature_flags: frozenset[str] | None = None,
) -> Page[EventType]:
    """The catalogue by name; ``feature_flags``: a scoped caller's, who sees only event types
    behind none or one of them (None: the admin, who sees all)."""
    query = select(EventType)
    if not include_archived:
        query = query.where(EventType.archived.is_(False))
    if feature_flags is not None:
        flagged = [json_list_has(EventType.feature_flags, flag) for flag in feature_flags]
        query = query.where(or_(json_list_empty(EventType.feature_flags), *flagged))
    return await paginate(session, query, EventType.name, page, order)


def _apply(event_type: EventType, data: EventTypeUpdate | EventTypePatch) -> None:
    partial = isinstance(data, EventTypePatch)
    fields = set(EventTypeUpdate.model_fields) - {"feature_flag"}  # folded into feature_flags
    for field, value in data.model_dump(exclude_unset=partial, include=fields).items():
        setattr(event_type, field, value)


async def create_event_type(session: AsyncSession, data: EventTypeIn) -> EventType:
    """A new event type; an archived one of the same name comes back with these fields (as Svix)."""
    existing = await session.get(EventType, data.name)
    if existing is not None and not existing.archived:
        raise Conflict("An event type with this name already exists")
    if existing is not None:
        _apply(existing, data)
        await session.flush()
        return existing
    event_type = EventType(name=data.name)
    _apply(event_type, data)
    session.add(event_type)
    await session.flush()
    return event_type


async def upsert_event_type(session: AsyncSession, name: str, data: EventTypeUpdate) -> tuple[EventType, bool]:
    existing = await session.get(EventType, name)
    if existing is not None:
        _apply(existing, data)
        await session.flush()
        return existing, False
    return await create_event_type(session, EventTypeIn(name=name, **data.model_dump())), True


async def update_event_type(session: AsyncSession, event_type: EventType, data: EventTypePatch) -> EventType:
    _apply(event_type, data)
    await session.flush()
    return event_type


async def missing_event_types(session: AsyncSession, names: Iterable[str]) -> list[str]:
    """Which of ``names`` are not live (unknown or archived) event types, in the order given."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    live = set(
        await session.scalars(select(EventType.name).where(EventType.name.in_(wanted), EventType.archived.is_(False)))
    )
    return [name for name in wanted if name not in live]


async def check_filterable(session: AsyncSession, names: list[str] | None, field: str = "eventTypes") -> None:
    """Refuse (422, naming them) event types an endpoint may not filter on: unknown or archived."""
    missing = await missing_event_types(session, names or [])
    if missing:
        raise invalid(
            ("body", field),
            f"unknown or archived event types: {', '.join(missing)} "
            "(create them at /api/v1/event-type, or set HOOKPOST_REQUIRE_KNOWN_EVENT_TYPES=false)",
            "unknown_event_type",
        )


async def check_payload(session: AsyncSession, event_type_name: str, payload: dict[str, Any]) -> None:
    """Refuse (422, naming the failing field) a payload its event type's newest schema rejects."""
    event_type = await session.get(EventType, event_type_name)
    schema = newest_schema(event_type.schemas) if event_type is not None else None
    if schema is None:
        return
    validator = validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(payload), key=lambda error: list(error.absolute_path))
    if errors:
        first = errors[0]
        raise invalid(
            ("body", "payload", *first.absolute_path),
            f"does not match the schema of {event_type_name}: {first.message}",
            "schema_mismatch",
        )


def example_payload(event_type: EventType, index: int) -> dict[str, Any]:
    """The ``index``-th example of the event type's newest schema."""
    schema = newest_schema(event_type.schemas) or {}
    examples = schema.get("examples")
    if not isinstance(examples, list) or not examples:
        raise invalid(
            ("body", "eventType"), f"event type {event_type.name} has no examples in its schema", "no_example"
        )
    if not 0 <= index < len(examples):
        raise invalid(
            ("body", "exampleIndex"), f"event type {event_type.name} has {len(examples)} example(s)", "no_example"
        )
    example = examples[index]
    if not isinstance(example, dict):
        raise invalid(("body", "eventType"), f"the example of {event_type.name} is not a JSON object", "no_example")
    return example


async def import_openapi(session: AsyncSession, data: EventTypeImportOpenApiIn) -> EventTypeImportOpenApiOutData:
    """Create or update an event type per webhook of the document (README: Event types)."""
    field = "specRaw" if data.spec_raw is not None else "spec"
    try:
        found = event_types_from_spec(parse_spec(data.spec, data.spec_raw))
    except SpecError as error:
        raise invalid(("body", field), str(error), "openapi") from None
    # Each webhook must make a valid event type: the same checks as creating one by hand.
    wanted: list[EventTypeIn] = []
    for item in found:
        try:
            wanted.append(EventTypeIn.model_validate(item.model_dump(exclude={"schemas"}) | {"schemas": item.schemas}))
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise invalid(("body", field, "webhooks", item.name), f"{where}: {problem['msg']}", "openapi") from None
    if data.dry_run:
        return EventTypeImportOpenApiOutData(modified=[item.name for item in found], to_modify=found)
    for imported in wanted:
        await upsert_event_type(session, imported.name, EventTypeUpdate(**imported.model_dump(exclude={"name"})))
    if data.replace_all:
        named = {item.name for item in found}
        for event_type in await session.scalars(select(EventType).where(EventType.archived.is_(False))):
            if event_type.name not in named:
                event_type.archived = True
        await session.flush()
    return EventTypeImportOpenApiOutData(modified=[item.name for item in found])
