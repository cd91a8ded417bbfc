from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.attempts.schemas import StatusCodeClass
from hookpost.delivery.restart import restart_delivery
from hookpost.kit.errors import Conflict
from hookpost.kit.ids import first_id_at, ids_made_after, ids_made_before, new_id
from hookpost.kit.pagination import Ordering, Page, PageParams, paginate
from hookpost.kit.time import as_utc, utcnow
from hookpost.messages.service import MessageFilters
from hookpost.settings import Settings
from hookpost.statistics.counts import Counts, store_counts
from hookpost.storage.models import Attempt, Delivery, Endpoint, Message, MessageStatus, TriggerType


@dataclass(frozen=True)
class AttemptFilters:
    """Which attempts a list keeps (Svix's query parameters of both attempt lists)."""

    status: MessageStatus | None = None
    status_code_class: StatusCodeClass | None = None
    event_types: Sequence[str] = ()
    channel: str | None = None
    tag: str | None = None
    before: datetime | None = None
    after: datetime | None = None


async def attempt_page(
    session: AsyncSession,
    page: PageParams,
    *,
    msg_id: str | None = None,
    endpoint_id: str | None = None,
    filters: AttemptFilters = AttemptFilters(),
) -> Page[Attempt]:
    """A page of attempts of a message and/or to an endpoint (its id or uid), newest first."""
    if msg_id is None and endpoint_id is None:
        raise ValueError("attempts are listed by message or by endpoint")
    query = select(Attempt)
    if msg_id is not None:
        query = query.where(Attempt.msg_id == msg_id)
    if endpoint_id is not None:
        query = query.join(Endpoint, Endpoint.id == Attempt.endpoint_id).where(
            or_(Endpoint.id == endpoint_id, Endpoint.uid == endpoint_id)
        )
    if filters.status is not None:
        query = query.where(Attempt.status == filters.status)
    if filters.status_code_class is not None:
        low = filters.status_code_class.value
        # Class 0: no response at all (a connection error or timeout).
        high = 0 if low == 0 else low + 99
        query = query.where(Attempt.response_status_code.between(low, high))
    if filters.before is not None:
        # The attempt's id, and its message's (made before it), bound the scan and the weeks read.
        query = query.where(
            Attempt.created_at < filters.before,
            Attempt.id < ids_made_before("atmpt", filters.before),
            Attempt.msg_id < ids_made_before("msg", filters.before),
        )
    if filters.after is not None:
        query = query.where(Attempt.created_at > filters.after, Attempt.id >= ids_made_after("atmpt", filters.after))
    if filters.event_types or filters.channel is not None or filters.tag is not None:
        # Filters on the message; the times above are the attempt's.
        by_message = MessageFilters(filters.event_types, filters.channel, filters.tag)
        query = by_message.apply(query.join(Message, Message.id == Attempt.msg_id))
    return await paginate(session, query, Attempt.id, page, Ordering.DESCENDING)


async def attempted_message_page(
    session: AsyncSession,
    endpoint: Endpoint,
    page: PageParams,
    filters: MessageFilters,
    status: MessageStatus | None,
    *,
    expanded_statuses: bool,
    now: datetime,
) -> tuple[Page[Delivery], dict[str, Message]]:
    """The deliveries owed to the endpoint, newest first, and their messages by id.

    With ``expanded_statuses`` a pending delivery a worker holds the lease of is sending (4),
    and ``status`` tells the two apart; without, both are pending.
    """
    query = filters.apply(
        select(Delivery)
        .join(Message, Message.id == Delivery.msg_id)
        .where(Delivery.endpoint_id == endpoint.id, *filters.id_bounds(Delivery.msg_id))
    )
    if filters.after is not None:
        # A delivery is made with its message or later (a replay): its id is bounded below as well.
        query = query.where(Delivery.id >= ids_made_after("dlv", filters.after))
    if status is MessageStatus.SENDING:
        query = query.where(Delivery.status == MessageStatus.PENDING, Delivery.lease_until > now)
    elif status is MessageStatus.PENDING and expanded_statuses:
        query = query.where(
            Delivery.status == MessageStatus.PENDING, or_(Delivery.lease_until.is_(None), Delivery.lease_until <= now)
        )
    elif status is not None:
        query = query.where(Delivery.status == status)
    result = await paginate(session, query, Delivery.id, page, Ordering.DESCENDING)
    return result, await messages_by_id(session, {delivery.msg_id for delivery in result.items})


async def messages_by_id(session: AsyncSession, msg_ids: Collection[str]) -> dict[str, Message]:
    """The messages a page of attempts or deliveries refers to, in one query."""
    if not msg_ids:
        return {}
    return {message.id: message for message in await session.scalars(select(Message).where(Message.id.in_(msg_ids)))}


async def find_attempt(session: AsyncSession, message: Message, attempt_id: str) -> Attempt | None:
    return await session.scalar(select(Attempt).where(Attempt.id == attempt_id, Attempt.msg_id == message.id))


async def destination_page(
    session: AsyncSession, message: Message, page: PageParams
) -> tuple[Page[Delivery], dict[str, Endpoint]]:
    """The message's deliveries (one per endpoint it is owed to), and those endpoints by id."""
    query = select(Delivery).where(Delivery.msg_id == message.id, Delivery.app_id == message.app_id)
    result = await paginate(session, query, Delivery.id, page, Ordering.ASCENDING)
    endpoints = {
        endpoint.id: endpoint
        for endpoint in await session.scalars(
            select(Endpoint).where(Endpoint.id.in_([delivery.endpoint_id for delivery in result.items]))
        )
    }
    return result, endpoints


async def last_attempts(session: AsyncSession, endpoint_ids: Sequence[str]) -> dict[str, Attempt]:
    """Each endpoint's latest attempt, if any: one short index read (endpoint, id) per endpoint."""
    latest: dict[str, Attempt] = {}
    for endpoint_id in endpoint_ids:
        attempt = await session.scalar(
            select(Attempt).where(Attempt.endpoint_id == endpoint_id).order_by(Attempt.id.desc()).limit(1)
        )
        if attempt is not None:
            latest[endpoint_id] = attempt
    return latest


async def delivery_statuses(session: AsyncSession, msg_ids: Sequence[str]) -> dict[str, dict[int, int]]:
    """For each message, how many of its deliveries stand at each status (``MessageStatus``)."""
    counts: dict[str, dict[int, int]] = {msg_id: {} for msg_id in msg_ids}
    if not msg_ids:
        return counts
    rows = await session.execute(
        select(Delivery.msg_id, Delivery.status, func.count())
        .where(Delivery.msg_id.in_(msg_ids))
        .group_by(Delivery.msg_id, Delivery.status)
    )
    for msg_id, status, count in rows:
        counts[msg_id][int(status)] = int(count)
    return counts


@dataclass(frozen=True)
class AttemptRates:
    """Attempts made in the last ``minutes`` minutes, per minute (oldest first), and how many failed."""

    minutes: int
    per_minute: Sequence[int]
    failed: int

    @property
    def total(self) -> int:
        return sum(self.per_minute)

    @property
    def failure_rate(self) -> float:
        return self.failed / self.total if self.total else 0.0


async def attempt_rates(session: AsyncSession, now: datetime, minutes: int = 15) -> AttemptRates:
    """Counted in one range scan of the primary key: attempt ids begin with their creation time."""
    end_ms = int(as_utc(now).timestamp() * 1000)
    bounds = [first_id_at("atmpt", end_ms - (minutes - index) * 60_000) for index in range(minutes + 1)]
    in_minute = [
        func.coalesce(func.sum(case((and_(Attempt.id >= low, Attempt.id < high), 1), else_=0)), 0)
        for low, high in itertools.pairwise(bounds)
    ]
    failed = func.coalesce(func.sum(case((Attempt.status == MessageStatus.FAIL, 1), else_=0)), 0)
    row = (
        await session.execute(select(*in_minute, failed).where(Attempt.id >= bounds[0], Attempt.id < bounds[-1]))
    ).one()
    return AttemptRates(minutes=minutes, per_minute=[int(count) for count in row[:-1]], failed=int(row[-1]))


async def resend_delivery(session: AsyncSession, message: Message, endpoint: Endpoint, settings: Settings) -> str:
    """Make the (message, endpoint) delivery due now as a manual attempt; commit; return its id.

    Works whether the message was delivered, failed, or never matched the endpoint; not once
    its payload is gone (expunged, or past retention).
    """
    if not message.payload:
        raise Conflict("The message's payload was deleted (expunged or past retention): nothing to send")
    now = utcnow()
    delivery = await session.scalar(
        select(Delivery).where(Delivery.msg_id == message.id, Delivery.endpoint_id == endpoint.id)
    )
    if delivery is None:
        delivery = Delivery(id=new_id("dlv"), app_id=message.app_id, msg_id=message.id, endpoint_id=endpoint.id)
        session.add(delivery)
    # Published by the caller right after the commit.
    counts = Counts()
    restart_delivery(
        delivery, TriggerType.MANUAL, now, counts, queued_until=now + timedelta(seconds=settings.requeue_after)
    )
    await store_counts(session, counts)
    await session.commit()
    return delivery.id
