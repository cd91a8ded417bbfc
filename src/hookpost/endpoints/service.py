"""Endpoints: where an application's messages go, with their secret and custom headers."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.background_tasks.kinds import RECOVER
from hookpost.delivery.network import address_allowed, literal_address
from hookpost.delivery.signing import SYMMETRIC_PREFIX, generate_ed25519_secret
from hookpost.endpoints.credentials import stored_url
from hookpost.endpoints.schemas import SENSITIVE_HEADERS, EndpointIn, EndpointPatch, EndpointUpdate, EventExampleIn
from hookpost.event_types.service import check_filterable, example_payload
from hookpost.kit.errors import Conflict, InvalidInput, NotFound
from hookpost.kit.ids import has_prefix, new_id
from hookpost.kit.pagination import Ordering, Page, PageParams, paginate
from hookpost.kit.time import utcnow
from hookpost.kit.validation import uid_from_path
from hookpost.settings import IPNetwork, Settings
from hookpost.storage.models import Application, BackgroundTask, Delivery, Destination, Endpoint, EventType, Message
from hookpost.stream.events import message_created

if TYPE_CHECKING:  # the dispatcher's module loads the Celery app
    from hookpost.delivery.dispatcher import Dispatcher
    from hookpost.stream.bus import EventPublisher


def generate_secret(settings: Settings | None = None) -> str:
    """A new signing secret of the configured kind (an HMAC one without settings)."""
    if settings is not None and settings.default_signature_type == "ed25519":
        return generate_ed25519_secret()
    return SYMMETRIC_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


async def find_endpoint(session: AsyncSession, app: Application, endpoint_id_or_uid: str) -> Endpoint | None:
    return await session.scalar(
        select(Endpoint).where(
            Endpoint.app_id == app.id,
            or_(Endpoint.id == endpoint_id_or_uid, Endpoint.uid == endpoint_id_or_uid),
        )
    )


async def endpoint_page(
    session: AsyncSession, application: Application, page: PageParams, order: Ordering
) -> Page[Endpoint]:
    return await paginate(session, select(Endpoint).where(Endpoint.app_id == application.id), Endpoint.id, page, order)


async def _flush_unique(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict("An endpoint with this uid already exists in this application") from exc


def _fields(data: EndpointUpdate | EndpointPatch, *, partial: bool) -> dict[str, object]:
    changes = data.model_dump(exclude_unset=partial, include=set(EndpointUpdate.model_fields))
    if "metadata" in changes:
        changes["metadata_"] = changes.pop("metadata")
    if changes.get("event_types") == []:
        changes["event_types"] = None  # empty means every event type, as null does
    if changes.get("disabled") is False:
        # Enabled again: whatever made Hookpost disable it starts over.
        changes.update(disabled_reason=None, failing_since=None)
    return changes


def check_destination_url(url: str, allowed: list[IPNetwork], loc: tuple[str | int, ...] = ("body", "url")) -> None:
    """Refuse, as invalid input, a URL whose host is literally an address we may not deliver to.

    Hostnames are checked on what they resolve to, at every connect (delivery/network.py).
    """
    try:
        host = urlsplit(url).hostname or ""
    except ValueError as exc:  # a port out of range, a bracketed host that is no address
        raise InvalidInput(loc, f"not a URL Hookpost can read: {exc}", "url_parsing") from exc
    address = literal_address(host)
    if address is not None and not address_allowed(address, allowed):
        raise InvalidInput(
            loc,
            f"{host} is {address}, which is not a public address; "
            "Hookpost delivers there only when HOOKPOST_ALLOWED_NETWORKS includes it",
            "blocked_address",
        )


async def create_endpoint(
    session: AsyncSession,
    application: Application,
    data: EndpointUpdate,
    settings: Settings,
    *,
    feature_flags: Collection[str] | None,
) -> Endpoint:
    """A new endpoint from POST's ``EndpointIn``, or from PUT's fields alone (an upsert that
    creates: its secret generated, no headers). ``feature_flags``: the caller's (a scoped
    token's), or None for the admin's (every one)."""
    secret, headers = (data.secret, data.headers) if isinstance(data, EndpointIn) else (None, {})
    check_destination_url(data.url, settings.allowed_networks)
    await check_filterable(
        session, data.event_types, feature_flags=feature_flags, require_known=settings.require_known_event_types
    )
    endpoint = Endpoint(
        id=new_id("ep"),
        app_id=application.id,
        secret=secret or generate_secret(settings),
        headers=headers,
        **_fields(data, partial=False),
    )
    endpoint.url, endpoint.url_credentials = stored_url(data.url, None)
    session.add(endpoint)
    await _flush_unique(session)
    return endpoint


async def update_endpoint(
    session: AsyncSession,
    endpoint: Endpoint,
    data: EndpointUpdate | EndpointPatch,
    settings: Settings,
    *,
    feature_flags: Collection[str] | None,
) -> Endpoint:
    """``feature_flags`` as ``create_endpoint``'s."""
    if "url" in data.model_fields_set:
        check_destination_url(data.url, settings.allowed_networks)
    if "event_types" in data.model_fields_set:
        # Only the names added are checked: an event type archived since, or subscribed to by
        # the admin behind a flag, stays in the filter (as Svix).
        kept = set(endpoint.event_types or ())
        added = [name for name in data.event_types or () if name not in kept]
        await check_filterable(
            session, added, feature_flags=feature_flags, require_known=settings.require_known_event_types
        )
    for field, value in _fields(data, partial=isinstance(data, EndpointPatch)).items():
        if field == "url":
            endpoint.url, endpoint.url_credentials = stored_url(data.url, endpoint.url_credentials)
        else:
            setattr(endpoint, field, value)
    await _flush_unique(session)
    return endpoint


async def upsert_endpoint(
    session: AsyncSession,
    application: Application,
    endpoint_id: str,
    data: EndpointUpdate,
    settings: Settings,
    *,
    feature_flags: Collection[str] | None,
) -> tuple[Endpoint, bool]:
    """PUT: replace the endpoint, or create it with the path as its uid (keeping that uid)."""
    if data.uid is None and not has_prefix(endpoint_id, "ep"):
        data = data.model_copy(update={"uid": uid_from_path(endpoint_id, "endpoint_id")})
    endpoint = await find_endpoint(session, application, endpoint_id)
    if endpoint is not None:
        return await update_endpoint(session, endpoint, data, settings, feature_flags=feature_flags), False
    if has_prefix(endpoint_id, "ep"):
        raise NotFound("Endpoint not found")
    return await create_endpoint(session, application, data, settings, feature_flags=feature_flags), True


def rotate_secret(
    endpoint: Endpoint | Destination,
    settings: Settings,
    new_secret: str | None = None,
    grace_seconds: int | None = None,
) -> None:
    """Rotate to ``new_secret`` (or a new one); the old one keeps signing for the grace period
    asked for, or the setting's. The same for a destination that signs (fifoEndpoint)."""
    grace = settings.secret_grace_period if grace_seconds is None else grace_seconds
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = utcnow() + timedelta(seconds=grace)
    endpoint.secret = new_secret or generate_secret(settings)


def visible_headers(endpoint: Endpoint) -> tuple[dict[str, str], list[str]]:
    """Headers to show, and the names of sensitive ones whose values are withheld."""
    return split_sensitive_headers(endpoint.headers)


def split_sensitive_headers(headers: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """``headers`` to show, and the names of sensitive ones whose values are withheld."""
    shown: dict[str, str] = {}
    sensitive: list[str] = []
    for name, value in headers.items():
        if name.lower() in SENSITIVE_HEADERS:
            sensitive.append(name)
        else:
            shown[name] = str(value)
    return shown, sensitive


def patch_headers(endpoint: Endpoint, set_headers: dict[str, str], delete: list[str]) -> None:
    deleted = {name.lower() for name in delete} | {name.lower() for name in set_headers}
    kept = {name: value for name, value in endpoint.headers.items() if name.lower() not in deleted}
    endpoint.headers = kept | set_headers


def start_recover(session: AsyncSession, endpoint: Endpoint, since: datetime, until: datetime | None) -> BackgroundTask:
    task = BackgroundTask(
        id=new_id("qtask"),
        kind=RECOVER,
        data={
            "endpointId": endpoint.id,
            "since": since.isoformat(),
            "until": (until or utcnow()).isoformat(),
            "recovered": 0,
        },
    )
    session.add(task)
    return task


async def send_example(
    session: AsyncSession,
    endpoint: Endpoint,
    data: EventExampleIn,
    settings: Settings,
    *,
    events: EventPublisher,
    dispatcher: Dispatcher,
) -> Message:
    """A real message to this endpoint alone: the event type's schema example (or ``payload``),
    committed, announced on the live stream and queued."""
    event_type = await session.get(EventType, data.event_type)
    if event_type is None or event_type.archived:
        raise NotFound("Event type not found")
    payload = data.payload if data.payload is not None else example_payload(event_type, data.example_index)
    now = utcnow()
    message = Message(
        id=new_id("msg"),
        app_id=endpoint.app_id,
        event_type=event_type.name,
        payload=json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
        created_at=now,
    )
    delivery = Delivery(
        id=new_id("dlv"),
        app_id=endpoint.app_id,
        msg_id=message.id,
        endpoint_id=endpoint.id,
        next_attempt_at=now,
        queued_until=now + timedelta(seconds=settings.requeue_after),
        created_at=now,
    )
    session.add(message)
    await session.flush()  # the message row first: the delivery references it
    session.add(delivery)
    await session.commit()
    events.publish(message_created(message.app_id, message.id, message.event_type, None, message.created_at))
    dispatcher.submit([delivery.id])
    return message
