"""Statistics read from the endpoint rollup (and the pending set), in time independent of history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.applications.service import names_by_id
from hookpost.kit.errors import InvalidInput
from hookpost.kit.ids import new_id
from hookpost.kit.time import as_utc, utcnow
from hookpost.statistics.counts import hour_of, next_hour
from hookpost.storage.models import Application, BackgroundTask, Delivery, Endpoint, EndpointRollup, MessageStatus

APPLICATION_STATS = "application.stats"
EVENT_TYPE_AGGREGATE = "event-type.aggregate"
_SETTLED = (MessageStatus.SUCCESS, MessageStatus.FAIL, MessageStatus.CANCELED)


def _created_in(since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    found = []
    if since is not None:
        found.append(Delivery.created_at >= since)
    if until is not None:
        found.append(Delivery.created_at <= until)
    return found


async def endpoint_stats(
    session: AsyncSession, endpoint: Endpoint, since: datetime | None, until: datetime | None
) -> dict[str, int]:
    """How many of the endpoint's deliveries created in [since, until] are in each state.

    The hours wholly inside the window come from the rollup; the part-hours at its edges (at
    most an hour of this endpoint's deliveries each) and the pending set are read from the
    deliveries, through ``ix_delivery_endpoint``.
    """
    counts = dict.fromkeys((name.lower() for name in MessageStatus.__members__), 0)
    now = utcnow()
    sending = and_(Delivery.status == MessageStatus.PENDING, Delivery.lease_until > now)
    state = case((sending, literal(MessageStatus.SENDING)), else_=Delivery.status)
    pending = (
        select(state, func.count())
        .where(Delivery.endpoint_id == endpoint.id, Delivery.status == MessageStatus.PENDING)
        .where(*_created_in(since, until))
        .group_by(state)
    )
    for status, count in await session.execute(pending):
        counts[MessageStatus(status).name.lower()] += count
    whole_from = None if since is None else next_hour(since)
    whole_until = None if until is None else hour_of(until)
    # Part-hours read from the deliveries, each [low, high) or, ending at ``until``, [low, until].
    edges: list[tuple[datetime | None, datetime | None]] = []
    if whole_from is not None and whole_until is not None and whole_from >= whole_until:
        edges.append((since, until))  # no whole hour inside: at most two part-hours, read whole
    else:
        if since is not None and whole_from != as_utc(since):
            edges.append((since, whole_from))
        if until is not None:
            edges.append((whole_until, until))
        for name, count in zip(
            ("success", "fail", "canceled"), await _rollup_sums(session, endpoint, whole_from, whole_until), strict=True
        ):
            counts[name] += count
    for low, high in edges:
        edge = (
            select(Delivery.status, func.count())
            .where(Delivery.endpoint_id == endpoint.id, Delivery.status.in_(_SETTLED), Delivery.created_at >= low)
            .where(Delivery.created_at <= high if high is until else Delivery.created_at < high)
            .group_by(Delivery.status)
        )
        for status, count in await session.execute(edge):
            counts[MessageStatus(status).name.lower()] += count
    return counts


async def _rollup_sums(
    session: AsyncSession, endpoint: Endpoint, whole_from: datetime | None, whole_until: datetime | None
) -> tuple[int, int, int]:
    """The endpoint's settled deliveries created in the rollup's hours [whole_from, whole_until)."""
    query = select(
        func.coalesce(func.sum(EndpointRollup.success), 0),
        func.coalesce(func.sum(EndpointRollup.fail), 0),
        func.coalesce(func.sum(EndpointRollup.canceled), 0),
    ).where(EndpointRollup.endpoint_id == endpoint.id)
    if whole_from is not None:
        query = query.where(EndpointRollup.period >= whole_from)
    if whole_until is not None:
        query = query.where(EndpointRollup.period < whole_until)
    success, fail, canceled = (await session.execute(query)).one()
    return int(success), int(fail), int(canceled)


def _hours(since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    """The rollup's hours that the window touches (Svix rounds these windows to the hour)."""
    found = []
    if since is not None:
        found.append(EndpointRollup.period >= hour_of(since))
    if until is not None:
        found.append(EndpointRollup.period <= hour_of(until))
    return found


async def attempt_stats(
    session: AsyncSession, endpoint: Endpoint, since: datetime | None, until: datetime | None
) -> dict[str, int]:
    """Attempts made to the endpoint in the window's hours by outcome, and its deliveries canceled
    (created in those hours)."""
    query = select(
        func.coalesce(func.sum(EndpointRollup.attempt_success), 0),
        func.coalesce(func.sum(EndpointRollup.attempt_fail), 0),
        func.coalesce(func.sum(EndpointRollup.canceled), 0),
    ).where(EndpointRollup.endpoint_id == endpoint.id)
    success, fail, canceled = (await session.execute(query.where(*_hours(since, until)))).one()
    return {"success": int(success), "fail": int(fail), "canceled": int(canceled)}


# --- The usage background tasks -----------------------------------------------------------


async def start_application_stats(
    session: AsyncSession, since: datetime, until: datetime, app_refs: list[str] | None
) -> tuple[BackgroundTask, list[str]]:
    """A task counting each application's attempts in [since, until] (hours touched); the refs
    (ids or uids) that name no application. With refs, only those applications."""
    unresolved: list[str] = []
    app_ids: list[str] | None = None
    if app_refs is not None:
        # Each ref by id or by uid as a path's application is (``names_by_id``), never both: a uid
        # that is another application's id names only its own application.
        by_id = [ref for ref in app_refs if names_by_id(ref)]
        by_uid = [ref for ref in app_refs if not names_by_id(ref)]
        rows = (
            await session.execute(
                select(Application.id, Application.uid).where(
                    or_(Application.id.in_(by_id), Application.uid.in_(by_uid))
                )
            )
        ).all()
        known = {row.id for row in rows if row.id in by_id} | {row.uid for row in rows if row.uid in by_uid}
        unresolved = [ref for ref in app_refs if ref not in known]
        app_ids = sorted({row.id for row in rows})
        if not app_ids:
            raise InvalidInput(("body", "appIds"), "None of these applications exists", "value_error")
    data: dict[str, Any] = {"since": since.isoformat(), "until": until.isoformat()}
    if app_ids is not None:
        data["appIds"] = app_ids
    task = BackgroundTask(id=new_id("qtask"), kind=APPLICATION_STATS, data=data)
    session.add(task)
    return task, unresolved


async def application_stats_step(session: AsyncSession, task: BackgroundTask) -> None:
    """The whole count in one step: a sum over the rollup's rows, however long the history."""
    data = dict(task.data)
    attempts = func.coalesce(func.sum(EndpointRollup.attempt_success + EndpointRollup.attempt_fail), 0)
    window = _hours(datetime.fromisoformat(data["since"]), datetime.fromisoformat(data["until"]))
    counted = select(EndpointRollup.app_id, attempts).where(*window).group_by(EndpointRollup.app_id).subquery()
    query = select(Application.id, Application.uid, func.coalesce(counted.c[1], 0)).outerjoin(
        counted, counted.c.app_id == Application.id
    )
    if "appIds" in data:
        query = query.where(Application.id.in_(data["appIds"]))
    rows = (await session.execute(query.order_by(Application.id))).all()
    data["appStats"] = [{"appId": app_id, "appUid": uid, "messageDestinations": int(n)} for app_id, uid, n in rows]
    task.data = data
    task.status = "finished"
    task.lease_until = None


def start_event_type_aggregate(session: AsyncSession) -> BackgroundTask:
    task = BackgroundTask(id=new_id("qtask"), kind=EVENT_TYPE_AGGREGATE, data={})
    session.add(task)
    return task


async def event_type_aggregate_step(session: AsyncSession, task: BackgroundTask) -> None:
    """Per application with endpoints: the event types its endpoints name, and whether one takes every type."""
    found: dict[str, tuple[set[str], bool]] = {}
    for app_id, event_types in await session.execute(
        select(Endpoint.app_id, Endpoint.event_types).order_by(Endpoint.app_id)
    ):
        named, catch_all = found.get(app_id, (set(), False))
        named.update(event_types or ())
        found[app_id] = (named, catch_all or not event_types)
    task.data = {
        "event_types": [
            {"appId": app_id, "explicitlySubscribedEventTypes": sorted(named), "hasCatchAllEndpoint": catch_all}
            for app_id, (named, catch_all) in found.items()
        ]
    }
    task.status = "finished"
    task.lease_until = None
