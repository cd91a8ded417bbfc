"""The event type catalogue: CRUD, what endpoints may filter on, and payload checks."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from jsonschema.validators import validator_for
from pydantic import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

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
from hookpost.kit.errors import Conflict, InvalidInput
from hookpost.kit.filters import json_list_empty, json_list_has
from hookpost.kit.pagination import Ordering, Page, PageParams, paginate
from hookpost.storage.models import EventType


def invalid(loc: Sequence[str | int], msg: str, kind: str) -> InvalidInput:
    """Refused input naming the field at ``loc`` (the API answers it as a 422)."""
    return InvalidInput(tuple(loc), msg, kind)


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


async def event_type_page(
    session: AsyncSession,
    page: PageParams,
    order: Ordering,
    *,
    include_archived: bool = False,
    feature_flags: Collection[str] | None = None,
) -> Page[EventType]:
    """A page of event types by name; with ``feature_flags`` (a scoped token's), only those
    without a flag or with one of them."""
    query = select(EventType)
    if not include_archived:
        query = query.where(EventType.archived.is_(False))
    if feature_flags is not None:
        flagged = [json_list_has(EventType.feature_flags, flag) for flag in feature_flags]
        query = query.where(or_(json_list_empty(EventType.feature_flags), *flagged))
    return await paginate(session, query, EventType.name, page, order)


async def all_event_types(session: AsyncSession, *, include_archived: bool) -> list[EventType]:
    query = select(EventType).order_by(EventType.name)
    if not include_archived:
        query = query.where(EventType.archived.is_(False))
    return list(await session.scalars(query))


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
    return await _add(session, data.name, data)


async def _add(session: AsyncSession, name: str, data: EventTypeUpdate) -> EventType:
    event_type = EventType(name=name)
    _apply(event_type, data)
    session.add(event_type)
    await session.flush()
    return event_type


async def upsert_event_type(session: AsyncSession, name: str, data: EventTypeUpdate) -> tuple[EventType, bool]:
    """PUT: replace the event type, or create it under the path's name (checked by the route)."""
    existing = await session.get(EventType, name)
    if existing is not None:
        _apply(existing, data)
        await session.flush()
        return existing, False
    return await _add(session, name, data), True


async def update_event_type(session: AsyncSession, event_type: EventType, data: EventTypePatch) -> EventType:
    _apply(event_type, data)
    await session.flush()
    return event_type


async def delete_event_type(session: AsyncSession, event_type: EventType, *, expunge: bool) -> None:
    """Archive the event type (endpoints filtering on it keep doing so; new filters may not name
    it), or with ``expunge`` delete it entirely."""
    if expunge:
        await session.delete(event_type)
    else:
        event_type.archived = True


def visible_to(feature_flags: Collection[str] | None, flagged: list[str] | None) -> bool:
    """Whether an event type behind ``flagged`` is visible to a caller holding ``feature_flags``
    (None: the admin, who sees every one; Svix: any one of the flags is enough)."""
    return feature_flags is None or not flagged or not set(flagged).isdisjoint(feature_flags)


async def check_filterable(
    session: AsyncSession,
    names: list[str] | None,
    *,
    feature_flags: Collection[str] | None,
    require_known: bool,
    field: str = "eventTypes",
) -> None:
    """Refuse (422, naming them) event types an endpoint may not filter on: unknown or archived
    ones when ``require_known``, and always those behind a feature flag the caller lacks, with
    the same answer as an unknown name: a name hidden from a token neither leaks nor gets its events."""
    wanted = list(dict.fromkeys(names or []))
    if not wanted:
        return
    rows = await session.execute(
        select(EventType.name, EventType.archived, EventType.feature_flags).where(EventType.name.in_(wanted))
    )
    found = {name: (archived, flagged) for name, archived, flagged in rows}

    def refused(name: str) -> bool:
        if name not in found:
            return require_known
        archived, flagged = found[name]
        return (archived and require_known) or not visible_to(feature_flags, flagged)

    missing = [name for name in wanted if refused(name)]
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
    """Create or update an event type per webhook of the document (docs/api.md: Event types)."""
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
