"""Destinations: an application's polling endpoints, FIFO endpoints, queues and stores.

Stored with their whole configuration encrypted (storage/encrypted.py); shown without their
passwords and secret keys. ``pollingEndpoint`` is served (destinations/poller.py); every other
type is delivered to in order (delivery/fifo.py, each type's sink in delivery/sinks/).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.destinations.kinds import DestinationType, Status, StatusIn
from hookpost.destinations.schemas import DestinationIn, DestinationPatch, FifoEndpointIn
from hookpost.endpoints.service import check_destination_url, generate_secret, rotate_secret, split_sensitive_headers
from hookpost.event_types.service import check_filterable
from hookpost.kit.errors import Conflict, InvalidInput, NotFound
from hookpost.kit.ids import IdPrefix, has_prefix, new_id
from hookpost.kit.pagination import Ordering, Page, PageParams, paginate
from hookpost.kit.urls import redact_url
from hookpost.settings import Settings
from hookpost.storage.models import Application, Destination, DestinationAttempt, FifoLease

ID_PREFIX: IdPrefix = "dest"
# Fields of a type's configuration that are never shown back.
_SECRET_FIELDS = frozenset({"key", "password", "secret_access_key"})
# Fields that hold a URL whose host Hookpost would connect to.
_URL_FIELDS = ("url", "uri", "queue_url", "endpoint_url")
_COMMON_FIELDS = ("uid", "status", "batch_size", "max_wait_secs", "event_types", "channels", "metadata")


async def find_destination(session: AsyncSession, app: Application, id_or_uid: str) -> Destination | None:
    return await session.scalar(
        select(Destination).where(
            Destination.app_id == app.id, or_(Destination.id == id_or_uid, Destination.uid == id_or_uid)
        )
    )


async def destination_page(
    session: AsyncSession, application: Application, page: PageParams, order: Ordering
) -> Page[Destination]:
    query = select(Destination).where(Destination.app_id == application.id)
    return await paginate(session, query, Destination.id, page, order)


async def destination_attempt_page(
    session: AsyncSession, destination: Destination, page: PageParams
) -> Page[DestinationAttempt]:
    """The destination's batch attempts, newest first."""
    query = select(DestinationAttempt).where(DestinationAttempt.destination_id == destination.id)
    return await paginate(session, query, DestinationAttempt.id, page, Ordering.DESCENDING)


async def fifo_leases(session: AsyncSession, destinations: Collection[Destination]) -> dict[str, FifoLease]:
    """The delivered destinations' state (position, batch retried, last failure), by destination id."""
    ids = [destination.id for destination in destinations if destination.type != DestinationType.POLLING_ENDPOINT]
    if not ids:
        return {}
    leases = await session.scalars(select(FifoLease).where(FifoLease.destination_id.in_(ids)))
    return {lease.destination_id: lease for lease in leases}


async def fifo_lease(session: AsyncSession, destination: Destination) -> FifoLease | None:
    return (await fifo_leases(session, [destination])).get(destination.id)


def shown_status(destination: Destination, lease: FifoLease | None = None) -> tuple[Status, str | None]:
    """The status to show and why it is not delivering: a failing batch (``retrying``;
    ``disabled`` once its retries were spent)."""
    failure = lease.last_error if lease is not None else None
    if destination.status == StatusIn.DISABLED:
        return Status.DISABLED, failure
    if failure is not None:
        return Status.RETRYING, failure
    return Status.ENABLED, None


def shown_config(destination: Destination) -> dict[str, Any]:
    """The configuration as it may be shown: no password or secret key, URLs without their passwords."""
    shown: dict[str, Any] = {}
    for field, stored in destination.config.items():
        if field in _SECRET_FIELDS:
            continue
        value = stored
        if field == "headers":
            headers, sensitive = split_sensitive_headers(stored)
            value = {"headers": headers, "sensitive": sensitive}
        elif field in _URL_FIELDS and isinstance(stored, str):
            value = redact_url(stored)
        shown[to_camel(field)] = value  # as the API's fields are named
    return shown


def _check_hosts(config: dict[str, Any], settings: Settings) -> None:
    for field in _URL_FIELDS:
        url = config.get(field)
        if isinstance(url, str):
            check_destination_url(url, settings.allowed_networks, ("body", "config", field))


async def _flush_unique(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict("A destination with this uid already exists in this application") from exc


def _common(data: Any, *, partial: bool) -> dict[str, Any]:
    changes: dict[str, Any] = data.model_dump(exclude_unset=partial, include=set(_COMMON_FIELDS))
    if "metadata" in changes:
        changes["metadata_"] = changes.pop("metadata")
    for field in ("event_types", "channels"):
        if changes.get(field) == []:
            changes[field] = None  # empty means every one, as null does
    if "status" in changes:
        changes["status"] = StatusIn(changes["status"]).value
    return changes


async def _check_filters(
    session: AsyncSession,
    data: Any,
    settings: Settings,
    current: list[str] | None,
    feature_flags: Collection[str] | None,
) -> None:
    """The event types the destination now filters on, as for an endpoint: only the names it adds
    are checked (``feature_flags``: the caller's, None for the admin)."""
    if "event_types" not in data.model_fields_set:
        return
    kept = set(current or ())
    added = [name for name in data.event_types or () if name not in kept]
    await check_filterable(
        session, added, feature_flags=feature_flags, require_known=settings.require_known_event_types
    )


def _stored_config(data: DestinationIn) -> tuple[dict[str, Any], str | None]:
    """The configuration to store, and the signing secret apart from it (fifoEndpoint)."""
    config = data.config.model_dump(mode="json", exclude_none=True)
    if isinstance(data, FifoEndpointIn):
        return {field: value for field, value in config.items() if field != "key"}, config.get("key")
    return config, None


async def create_destination(
    session: AsyncSession,
    application: Application,
    data: DestinationIn,
    settings: Settings,
    feature_flags: Collection[str] | None = None,
) -> Destination:
    config, key = _stored_config(data)
    _check_hosts(config, settings)
    await _check_filters(session, data, settings, None, feature_flags)
    destination = Destination(
        id=new_id(ID_PREFIX),
        app_id=application.id,
        type=data.type.value,
        config=config,
        secret=(key or generate_secret(settings)) if data.type == DestinationType.FIFO_ENDPOINT else None,
        **_common(data, partial=False),
    )
    session.add(destination)
    await _flush_unique(session)
    return destination


def _same_type(destination: Destination, data: DestinationIn | DestinationPatch) -> None:
    if data.type.value != destination.type:
        raise InvalidInput(
            ("body", "type"),
            f"this destination is a {destination.type}; its type cannot change (delete it and create another)",
            "type_change",
        )


async def replace_destination(
    session: AsyncSession,
    destination: Destination,
    data: DestinationIn,
    settings: Settings,
    feature_flags: Collection[str] | None = None,
) -> Destination:
    """PUT: every field as sent; the signing secret kept unless ``config.key`` names a new one."""
    _same_type(destination, data)
    config, key = _stored_config(data)
    _check_hosts(config, settings)
    await _check_filters(session, data, settings, destination.event_types, feature_flags)
    for field, value in _common(data, partial=False).items():
        setattr(destination, field, value)
    destination.config = config
    if key is not None:
        destination.secret = key
    await _flush_unique(session)
    return destination


async def patch_destination(
    session: AsyncSession,
    destination: Destination,
    data: DestinationPatch,
    settings: Settings,
    feature_flags: Collection[str] | None = None,
) -> Destination:
    """PATCH: only the fields sent change, the configuration's too (checked whole once merged)."""
    _same_type(destination, data)
    if "config" in data.model_fields_set and data.config is not None:
        changes = data.config.model_dump(mode="json", exclude_unset=True)
        merged = {**destination.config, **changes}
        # The merged configuration must still be a whole one of its type.
        checked = _validate_merged(destination.type, merged)
        _check_hosts(checked, settings)
        destination.config = checked
    await _check_filters(session, data, settings, destination.event_types, feature_flags)
    for field, value in _common(data, partial=True).items():
        setattr(destination, field, value)
    await _flush_unique(session)
    return destination


_WHOLE: TypeAdapter[DestinationIn] = TypeAdapter(DestinationIn)


def _validate_merged(type_: str, merged: dict[str, Any]) -> dict[str, Any]:
    try:
        whole = _WHOLE.validate_python({"type": type_, "config": merged})
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InvalidInput(("body", *error["loc"][1:]), error["msg"], error["type"]) from exc
    config, _ = _stored_config(whole)
    return config


async def upsert_destination(
    session: AsyncSession,
    application: Application,
    destination_id: str,
    data: DestinationIn,
    settings: Settings,
    feature_flags: Collection[str] | None = None,
) -> tuple[Destination, bool]:
    """PUT: replace the destination, or create it with the path as its uid."""
    if data.uid is None and not has_prefix(destination_id, ID_PREFIX):
        data = data.model_copy(update={"uid": destination_id})
    destination = await find_destination(session, application, destination_id)
    if destination is not None:
        return await replace_destination(session, destination, data, settings, feature_flags), False
    if has_prefix(destination_id, ID_PREFIX):
        raise NotFound("Destination not found")
    return await create_destination(session, application, data, settings, feature_flags), True


def rotate_destination_secret(
    destination: Destination, settings: Settings, new_secret: str | None, grace_seconds: int | None
) -> str:
    """A fifoEndpoint's new signing secret (the old one signs on for the grace period); the
    other types have none to rotate."""
    if destination.type != DestinationType.FIFO_ENDPOINT or destination.secret is None:
        raise Conflict(f"A {destination.type} destination has no signing secret (only a fifoEndpoint has)")
    rotate_secret(destination, settings, new_secret, grace_seconds)
    return destination.secret


async def last_destination_attempts(
    session: AsyncSession, destination_ids: Collection[str]
) -> dict[str, DestinationAttempt]:
    """Each destination's newest batch attempt (ids begin with their time), by destination id."""
    if not destination_ids:
        return {}
    newest = (
        select(func.max(DestinationAttempt.id).label("id"))
        .where(DestinationAttempt.destination_id.in_(destination_ids))
        .group_by(DestinationAttempt.destination_id)
        .subquery()
    )
    attempts = await session.scalars(select(DestinationAttempt).join(newest, DestinationAttempt.id == newest.c.id))
    return {attempt.destination_id: attempt for attempt in attempts}
