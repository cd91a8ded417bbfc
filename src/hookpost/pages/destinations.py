"""What the console's and the app portal's destination pages show, and the steps of their actions
(create from a form, enable or disable, rotate the secret): one copy for both fronts, each
answering in its own way and authorising as it does (the portal: its session's application only).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Form
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.api.dependencies import SessionDep
from hookpost.applications.dependencies import ApplicationDep
from hookpost.destinations.dependencies import DestinationDep
from hookpost.destinations.kinds import DestinationType, Status, StatusIn
from hookpost.destinations.schemas import DestinationIn, DestinationPatch
from hookpost.destinations.service import (
    create_destination,
    destination_attempt_page,
    destination_page,
    fifo_lease,
    fifo_leases,
    last_destination_attempts,
    patch_destination,
    rotate_destination_secret,
    shown_config,
    shown_status,
)
from hookpost.kit.pagination import Ordering, PageParams
from hookpost.pages.forms import Iterator, form_names, notice, picked_names
from hookpost.pages.views import PAGE_SIZE, Done
from hookpost.settings import Settings
from hookpost.storage.models import Application, Destination, DestinationAttempt

DESTINATION_TYPES = [kind.value for kind in DestinationType]
_DESTINATION_IN: TypeAdapter[DestinationIn] = TypeAdapter(DestinationIn)
_DESTINATION_PATCH: TypeAdapter[DestinationPatch] = TypeAdapter(DestinationPatch)


@dataclass(frozen=True)
class DestinationRow:
    """A destination as a list shows it: what it does now, why not, and its newest batch attempt."""

    destination: Destination
    status: Status
    reason: str | None
    last: DestinationAttempt | None
    config: dict[str, Any]  # as it may be shown: no password, no secret key


def destination_path(pages_root: str, destination: Destination) -> str:
    """A destination's page on a front (``/console`` or ``/portal``)."""
    return f"{pages_root}/app/{destination.app_id}/destination/{destination.id}"


async def destinations_page_parts(
    application: ApplicationDep, session: SessionDep, iterator: Iterator = None, done: Done = None
) -> dict[str, Any]:
    """GET .../destination, each with its shown status and its newest attempt."""
    page = await destination_page(session, application, PageParams(PAGE_SIZE, iterator), Ordering.ASCENDING)
    leases = await fifo_leases(session, page.items)
    last = await last_destination_attempts(session, [destination.id for destination in page.items])
    rows = [
        DestinationRow(
            destination,
            *shown_status(destination, leases.get(destination.id)),
            last.get(destination.id),
            shown_config(destination),
        )
        for destination in page.items
    ]
    return {"app": application, "destinations": page, "rows": rows, "types": DESTINATION_TYPES, "notice": notice(done)}


async def destination_page_parts(
    application: ApplicationDep,
    destination: DestinationDep,
    session: SessionDep,
    iterator: Iterator = None,
    done: Done = None,
) -> dict[str, Any]:
    """GET .../destination/{id} and GET .../destination/{id}/attempt (newest first)."""
    lease = await fifo_lease(session, destination)
    status, reason = shown_status(destination, lease)
    attempts = await destination_attempt_page(session, destination, PageParams(PAGE_SIZE, iterator))
    return {
        "app": application,
        "destination": destination,
        "status": status,
        "reason": reason,
        "lease": lease,
        "config": shown_config(destination),
        "attempts": attempts,
        "notice": notice(done),
    }


DestinationsPageDep = Annotated[dict[str, Any], Depends(destinations_page_parts)]
DestinationPageDep = Annotated[dict[str, Any], Depends(destination_page_parts)]


@dataclass(frozen=True)
class DestinationForm:
    """The new-destination form: the fields every type has, and each type's own (those of
    another type than the one chosen are ignored)."""

    type: str
    uid: str
    batch_size: str
    max_wait_secs: str
    event_types: list[str]
    channels: list[str]
    url: str
    routing_key: str
    table_name: str
    password: str
    region: str
    bucket: str
    access_key_id: str
    secret_access_key: str


async def destination_form(
    type: Annotated[str, Form(max_length=32)] = "",
    uid: Annotated[str, Form(max_length=256)] = "",
    batch_size: Annotated[str, Form(max_length=16)] = "",
    max_wait_secs: Annotated[str, Form(max_length=16)] = "",
    event_types: Annotated[list[str] | None, Form()] = None,
    channels: Annotated[str, Form(max_length=4096)] = "",
    url: Annotated[str, Form(max_length=4096)] = "",
    routing_key: Annotated[str, Form(max_length=1024)] = "",
    table_name: Annotated[str, Form(max_length=256)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    region: Annotated[str, Form(max_length=64)] = "",
    bucket: Annotated[str, Form(max_length=64)] = "",
    access_key_id: Annotated[str, Form(max_length=1024)] = "",
    secret_access_key: Annotated[str, Form(max_length=1024)] = "",
) -> DestinationForm:
    return DestinationForm(
        type.strip(),
        uid.strip(),
        batch_size.strip(),
        max_wait_secs.strip(),
        picked_names(event_types),
        form_names(channels),
        url.strip(),
        routing_key.strip(),
        table_name.strip(),
        password,
        region.strip(),
        bucket.strip(),
        access_key_id.strip(),
        secret_access_key,
    )


DestinationFormDep = Annotated[DestinationForm, Depends(destination_form)]


def _filled(**fields: str) -> dict[str, str]:
    return {name: value for name, value in fields.items() if value}


def _config(form: DestinationForm) -> dict[str, str]:
    """The chosen type's configuration, from the fields the form has for it."""
    aws = _filled(region=form.region, access_key_id=form.access_key_id, secret_access_key=form.secret_access_key)
    configs = {
        DestinationType.POLLING_ENDPOINT: {},
        DestinationType.FIFO_ENDPOINT: _filled(url=form.url),
        DestinationType.RABBIT_MQ: _filled(uri=form.url, routing_key=form.routing_key),
        DestinationType.POSTGRES: _filled(url=form.url, table_name=form.table_name, password=form.password),
        DestinationType.SQS: aws | _filled(queue_url=form.url),
        DestinationType.AMAZON_S3: aws | _filled(bucket=form.bucket),
    }
    return configs.get(DestinationType(form.type), {}) if form.type in DESTINATION_TYPES else {}


def destination_in(form: DestinationForm) -> DestinationIn:
    """The API's body for this form, checked as the API checks it (a ValidationError: a 422 page)."""
    body: dict[str, Any] = {"type": form.type, "config": _config(form)} | _filled(
        uid=form.uid, batch_size=form.batch_size, max_wait_secs=form.max_wait_secs
    )
    if form.event_types:
        body["event_types"] = form.event_types
    if form.channels:
        body["channels"] = form.channels
    return _DESTINATION_IN.validate_python(body)


async def add_destination(
    session: AsyncSession,
    application: Application,
    form: DestinationForm,
    settings: Settings,
    *,
    feature_flags: Collection[str] | None,
) -> Destination:
    """POST /api/v1/app/{app_id}/destination, from the new-destination form."""
    return await create_destination(session, application, destination_in(form), settings, feature_flags)


async def set_destination_status(
    session: AsyncSession, destination: Destination, enabled: bool, settings: Settings
) -> Destination:
    """PATCH .../destination/{id} with ``status`` alone."""
    status = StatusIn.ENABLED if enabled else StatusIn.DISABLED
    data = _DESTINATION_PATCH.validate_python({"type": destination.type, "status": status})
    return await patch_destination(session, destination, data, settings, feature_flags=None)


async def rotate_destination_secret_now(session: AsyncSession, destination: Destination, settings: Settings) -> str:
    """POST .../destination/{id}/secret/rotate with the default grace period: the new secret, to show once."""
    key = rotate_destination_secret(destination, settings, None, None)
    await session.flush()
    return key
