"""Claiming deliveries: which are due, and a lease that makes one worker their only sender.

The database is the source of truth. The broker only carries nudges ("look at these
deliveries"), so a lost or repeated task can delay a delivery but never lose or double it:
a worker sends only after it has claimed the delivery with a lease.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from typing import cast as cast_type

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    String,
    Table,
    Text,
    any_,
    cast,
    func,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.sql.dml import ReturningUpdate

from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.due import claimable, sendable
from hookpost.delivery.signing import webhook_headers
from hookpost.endpoints.credentials import outgoing_headers
from hookpost.kit.secret_box import UnreadableSecret
from hookpost.kit.time import as_utc, utcnow
from hookpost.settings import Settings
from hookpost.storage.encrypted import open_json, open_text
from hookpost.storage.models import Delivery, Endpoint, Message, TriggerType

logger = logging.getLogger(__name__)

_DELIVERY = cast_type(Table, Delivery.__table__)


class _EndpointRow(NamedTuple):
    """What sending to an endpoint needs, its secrets and headers still as stored (encrypted)."""

    id: str
    url: str
    disabled: bool
    throttle_rate: int | None
    headers: str | None
    url_credentials: str | None
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None


# Read as stored, not through the encrypted column types: each endpoint is decrypted on its
# own, so one that this process's key cannot open fails alone (``_unlocked``), not the claim.
_ENDPOINT_ROW = select(
    Endpoint.id,
    Endpoint.url,
    Endpoint.disabled,
    Endpoint.throttle_rate,
    type_coerce(Endpoint.headers, Text),
    type_coerce(Endpoint.url_credentials, Text),
    type_coerce(Endpoint.secret, Text),
    type_coerce(Endpoint.previous_secret, Text),
    Endpoint.previous_secret_expires_at,
)


@dataclass(frozen=True)
class _Unlocked:
    """An endpoint's own headers (with Basic auth for credentials in its URL) and signing secrets, decrypted."""

    headers: dict[str, str]
    secrets: list[str]


def _unlocked(endpoint: _EndpointRow, now: datetime) -> _Unlocked:
    """Decrypt what signing and sending need; raises ``UnreadableSecret`` when our key cannot."""
    stored_headers = open_json(endpoint.headers) if endpoint.headers else {}
    credentials = open_text(endpoint.url_credentials) if endpoint.url_credentials else None
    secrets = [open_text(endpoint.secret)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and as_utc(expires) > now:
        secrets.append(open_text(endpoint.previous_secret))
    return _Unlocked(outgoing_headers(stored_headers, credentials), secrets)


@dataclass(frozen=True)
class Claimed:
    """A delivery this worker holds, with what sending it needs (read while claiming)."""

    delivery_id: str
    app_id: str
    msg_id: str
    endpoint_id: str
    url: str
    body: str
    headers: dict[str, str]
    throttle_rate: int | None
    trigger_type: TriggerType
    accepted_at: datetime
    lease: datetime
    # The delivery as claimed (pending, so its status needs no field): while our lease stands
    # nothing else changes it (a resend or a purge ends the lease), so recording reads it here.
    attempt_count: int
    created_at: datetime
    # Why it cannot be sent, when that is known before trying (a secret this process cannot
    # decrypt): its attempt fails with this error, and only its own.
    unsendable: str | None = None
    # Its message's traceparent (read only while tracing is on): its attempt's spans join that trace.
    traceparent: str | None = None


def _returned_columns(with_traceparent: bool) -> list[Any]:
    """After the delivery's own seven: its message's payload and acceptance time, its due time,
    and (tracing on) its message's traceparent. The message's columns come back with the
    lease as subqueries in RETURNING (SQLite's RETURNING may not name another table): one
    round trip leases and reads the batch."""

    def of_message(column: Any) -> Any:
        return select(column).where(Message.id == Delivery.msg_id).correlate(Delivery).scalar_subquery()

    columns = [of_message(Message.payload), of_message(Message.created_at), Delivery.next_attempt_at]
    return [*columns, of_message(Message.traceparent)] if with_traceparent else columns


def _lease_statement(
    settings: Settings,
    now: datetime,
    lease: datetime,
    nudged: Sequence[str],
    fill_room: int,
    excluded: Sequence[ColumnElement[bool]],
    *,
    with_traceparent: bool,
) -> ReturningUpdate[Any]:
    """The UPDATE that leases the ``nudged`` deliveries that are claimable and up to
    ``fill_room`` of the longest-due others, returning what sending them needs.

    On PostgreSQL, with a fill, the rows to lease are chosen and locked by subqueries (the
    fill's from the due set's index, the nudged by key, each skipping rows another claim
    holds) and the UPDATE finds them by key in one array of ids. Conditions on the UPDATE
    itself ("nudged or in the fill, and claimable") would let a prepared statement's generic
    plan, which cannot see how few the ids are, read the whole due set to find them, at
    every claim. Rows locked in the same statement cannot change before it updates them.
    """
    conditions: list[ColumnElement[bool]] = [Delivery.id.in_(nudged), *claimable(now), *excluded]
    if fill_room > 0:
        fill = sendable(settings, now, fill_room).where(*excluded)
        if settings.is_sqlite:
            conditions[0] = or_(conditions[0], Delivery.id.in_(fill.scalar_subquery()))
        else:
            filled = fill.subquery("fill")
            ids: ColumnElement[Any] = select(func.array_agg(filled.c.id)).scalar_subquery()
            if nudged:
                due = (
                    select(Delivery.id)
                    .where(*conditions)
                    .with_for_update(of=Delivery, skip_locked=True)
                    .subquery("nudged")
                )
                ids = func.array_cat(ids, select(func.array_agg(due.c.id)).scalar_subquery())
            # Cast: "= ANY (SELECT ...)" would compare with each row of a subquery, not an array's items.
            conditions = [Delivery.id == any_(cast(ids, ARRAY(String)))]
    return (
        update(_DELIVERY)
        .where(*conditions)
        .values(lease_until=lease, updated_at=now)
        .returning(
            Delivery.id,
            Delivery.app_id,
            Delivery.trigger_type,
            Delivery.endpoint_id,
            Delivery.msg_id,
            Delivery.attempt_count,
            Delivery.created_at,
            *_returned_columns(with_traceparent),
        )
    )


async def claim(
    context: DeliveryContext,
    delivery_ids: Sequence[str],
    room: int,
    *,
    exclude_endpoints: Collection[str] = (),
    exclude_apps: Collection[str] = (),
    admit: Callable[[Claimed], bool] | None = None,
    with_traceparent: bool = False,
) -> tuple[list[Claimed], bool]:
    """Lease up to ``room`` deliveries: the nudged ``delivery_ids`` that are due and free,
    then the longest-due others, in one transaction; return them and whether more may be due.

    Deliveries to ``exclude_endpoints`` (their receiver is already as busy as we let it be)
    and of ``exclude_apps`` (the application holds its whole share of the worker) are left
    for later. ``admit`` sees each claimed delivery; one it refuses is released
    at once, in the same transaction, so a receiver's backlog never fills the room another
    receiver's deliveries need. One UPDATE takes them all (a row another worker holds is
    left out) and returns what sending needs: a claim costs the same few round trips at
    any size. ``with_traceparent`` reads each message's traceparent too (tracing on).
    """
    settings = context.settings
    now = utcnow()
    lease = now + timedelta(seconds=settings.lease_seconds)
    nudged = list(delivery_ids[:room])
    fill_room = room - len(nudged)
    excluded: list[ColumnElement[bool]] = []
    if exclude_endpoints:
        excluded.append(Delivery.endpoint_id.not_in(list(exclude_endpoints)))
    if exclude_apps:
        excluded.append(Delivery.app_id.not_in(list(exclude_apps)))
    async with context.sessionmaker() as session:
        rows = (
            await session.execute(
                _lease_statement(settings, now, lease, nudged, fill_room, excluded, with_traceparent=with_traceparent)
            )
        ).all()
        # A full fill says more is likely due; nudges that filled the room say nothing.
        more_due = len(rows) >= fill_room if fill_room > 0 else bool(rows)
        if not rows:
            await session.commit()
            return [], False
        rows = sorted(rows, key=lambda row: as_utc(row[9]))  # the longest due first
        endpoint_ids = {row[3] for row in rows}
        endpoints = {
            row.id: row
            for row in map(
                _EndpointRow._make, await session.execute(_ENDPOINT_ROW.where(Endpoint.id.in_(endpoint_ids)))
            )
        }
        unlocked: dict[str, _Unlocked | UnreadableSecret] = {}
        for endpoint in endpoints.values():
            try:
                unlocked[endpoint.id] = _unlocked(endpoint, now)
            except UnreadableSecret as error:
                logger.warning("endpoint %s: %s", endpoint.id, error)
                unlocked[endpoint.id] = error
        claimed: list[Claimed] = []
        released: list[str] = []
        for row in rows:
            delivery_id, app_id, trigger_type, endpoint_id, msg_id = row[:5]
            attempt_count, created_at, payload, accepted_at = row[5:9]
            endpoint = endpoints[endpoint_id]
            if endpoint.disabled:
                # Left pending: it goes out when the endpoint is enabled again.
                released.append(delivery_id)
                continue
            opened = unlocked[endpoint_id]
            headers: dict[str, str] = {}
            if isinstance(opened, _Unlocked):
                headers = {**opened.headers, **webhook_headers(msg_id, now, payload, opened.secrets)}
            item = Claimed(
                delivery_id=delivery_id,
                app_id=app_id,
                msg_id=msg_id,
                endpoint_id=endpoint_id,
                url=endpoint.url,
                body=payload,
                headers=headers,
                throttle_rate=endpoint.throttle_rate,
                trigger_type=TriggerType(trigger_type),
                accepted_at=as_utc(accepted_at),
                lease=lease,
                attempt_count=attempt_count,
                created_at=created_at,
                unsendable=None if isinstance(opened, _Unlocked) else f"not sent: {opened}",
                traceparent=row[10] if with_traceparent else None,
            )
            if admit is not None and not admit(item):
                released.append(delivery_id)
                continue
            claimed.append(item)
        if released:
            await session.execute(
                update(Delivery)
                .where(Delivery.id.in_(released))
                .values(lease_until=None)
                .execution_options(synchronize_session=False)
            )
        await session.commit()  # no transaction stays open across the HTTP calls
    return claimed, more_due
