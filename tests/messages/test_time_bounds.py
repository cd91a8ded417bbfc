"""Lists bounded by ``before``/``after`` also bound the id (ids begin with their time): the
same rows as a filter on ``created_at`` alone, over a history of several weeks, and on
PostgreSQL only the window's weekly partitions are read."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text

from hookpost.attempts.service import AttemptFilters, attempt_page, attempted_message_page
from hookpost.kit.ids import ID_TIME_MARGIN_MS, first_id_at
from hookpost.kit.pagination import PageParams
from hookpost.messages.service import MessageFilters, message_page
from hookpost.settings import Settings
from hookpost.storage import partitions
from hookpost.storage.database import create_engine, create_sessionmaker
from hookpost.storage.models import Application, Attempt, Delivery, Endpoint, Message

_NOW = datetime.now(UTC).replace(microsecond=0)
_WEEKS = 5
_MARGIN = timedelta(milliseconds=ID_TIME_MARGIN_MS)
_BOUNDS = [_NOW - timedelta(weeks=w, hours=h) for w, h in [(1, 3), (2, 0), (3, 5), (4, 1)]]


def _id(prefix: Any, at: datetime) -> str:
    # The time's smallest id with random low bits, as new_id makes it at that time.
    smallest = first_id_at(prefix, int(at.timestamp() * 1000))
    return smallest[:-8] + secrets.token_hex(4)


def _history() -> list[tuple[datetime, datetime]]:
    """(created_at, the time in its id) of messages over five weeks, a few hours apart, with
    ids made up to just under the margin after their row's time (a batch's ``now``) and
    rows close to the bounds the tests ask for."""
    times = []
    start = _NOW - timedelta(weeks=_WEEKS)
    for n in range(0, _WEEKS * 7 * 24, 11):
        at = start + timedelta(hours=n, seconds=n % 5)
        lag = [timedelta(0), timedelta(milliseconds=999), _MARGIN - timedelta(seconds=1)][n % 3]
        times.append((at, at + lag))
    for bound in _BOUNDS:  # just inside a window whose id is past its bound, and just outside
        times += [(bound - timedelta(seconds=1), bound + timedelta(seconds=30)), (bound, bound)]
        times += [(bound + timedelta(milliseconds=1), bound + timedelta(milliseconds=1))]
    return times


async def _load(settings: Settings) -> dict[str, Any]:
    engine = create_engine(settings)
    if not settings.is_sqlite:
        async with engine.begin() as connection:
            for back in range(_WEEKS + 1):
                for statement in partitions.create_period_statements((_NOW - timedelta(weeks=back)).date()):
                    await connection.execute(text(statement))
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session:
        app = Application(id="app_t", name="t")
        endpoint = Endpoint(id="ep_t", app_id=app.id, url="https://example.test/", secret="s")
        session.add_all([app, endpoint])
        await session.flush()
        for n, (at, id_at) in enumerate(_history()):
            message = Message(
                id=_id("msg", id_at),
                app_id=app.id,
                event_type="rare" if n % 4 == 0 else "common",
                payload=json.dumps({"n": n}),
                channels=["c"] if n % 3 == 0 else None,
                created_at=at,
            )
            session.add(message)
            delivery = Delivery(
                id=_id("dlv", id_at), app_id=app.id, msg_id=message.id, endpoint_id=endpoint.id, created_at=at
            )
            session.add(delivery)
            # An attempt some minutes after its message, its id made a moment after its time too.
            attempt_at = at + timedelta(minutes=n % 50)
            session.add(
                Attempt(
                    id=_id("atmpt", attempt_at + timedelta(milliseconds=n % 1000)),
                    app_id=app.id,
                    msg_id=message.id,
                    endpoint_id=endpoint.id,
                    delivery_id=delivery.id,
                    url="https://example.test/",
                    status=0,
                    created_at=attempt_at,
                )
            )
        await session.commit()
        rows = {
            "messages": [
                (m.id, m.created_at, m.event_type, m.channels) for m in await session.scalars(select(Message))
            ],
            "attempts": [(a.id, a.created_at) for a in await session.scalars(select(Attempt))],
        }
    await engine.dispose()
    return rows


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


async def _walk(read: Any, limit: int = 20) -> list[str]:
    """Every page of a list, followed by its iterator, newest first."""
    ids: list[str] = []
    iterator = None
    while True:
        page = await read(PageParams(limit, iterator))
        ids += [row.id for row in page.items]
        if page.done:
            return ids
        iterator = page.iterator


async def _check_lists(settings: Settings) -> None:
    rows = await _load(settings)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    windows: list[tuple[datetime | None, datetime | None]] = [(None, b) for b in _BOUNDS]
    windows += [(a, None) for a in _BOUNDS] + [(_BOUNDS[2], _BOUNDS[0]), (_BOUNDS[3], _BOUNDS[1])]
    try:
        async with sessionmaker() as session:
            application = await session.get(Application, "app_t")
            endpoint = await session.get(Endpoint, "ep_t")
            assert application is not None
            assert endpoint is not None
            for after, before in windows:

                def inside(at: datetime, after: datetime | None = after, before: datetime | None = before) -> bool:
                    return (after is None or _utc(at) > after) and (before is None or _utc(at) < before)

                for event_types, channel in [((), None), (("rare",), None), ((), "c")]:
                    filters = MessageFilters(event_types=event_types, channel=channel, before=before, after=after)
                    expected = sorted(
                        (
                            msg_id
                            for msg_id, at, event_type, channels in rows["messages"]
                            if inside(at)
                            and (not event_types or event_type in event_types)
                            and (channel is None or channel in (channels or []))
                        ),
                        reverse=True,
                    )
                    assert expected, (after, before)
                    listed = await _walk(lambda page, f=filters: message_page(session, application, page, f))
                    assert listed == expected, (after, before, event_types, channel)
                    owed = await _walk(
                        lambda page, f=filters: _deliveries(session, endpoint, page, f)  # type: ignore[arg-type]
                    )
                    assert len(owed) == len(expected)

                expected_attempts = sorted((a for a, at in rows["attempts"] if inside(at)), reverse=True)
                attempt_filters = AttemptFilters(before=before, after=after)
                for by in ({"endpoint_id": "ep_t"}, {"msg_id": expected[0]} if expected else {}):
                    listed = await _walk(
                        lambda page, by=by, f=attempt_filters: attempt_page(session, page, filters=f, **by)  # type: ignore[misc]
                    )
                    wanted = (
                        expected_attempts
                        if "endpoint_id" in by
                        else [
                            a.id
                            for a in await session.scalars(
                                select(Attempt).where(Attempt.msg_id == by["msg_id"]).order_by(Attempt.id.desc())
                            )
                            if inside(a.created_at)
                        ]
                    )
                    assert listed == wanted, (after, before, by)
    finally:
        await engine.dispose()


async def _deliveries(session: Any, endpoint: Endpoint, page: PageParams, filters: MessageFilters) -> Any:
    result, _ = await attempted_message_page(
        session, endpoint, page, filters, None, expanded_statuses=False, now=datetime.now(UTC)
    )
    return result


def test_lists_bounded_by_time_keep_the_same_rows(settings_per_database: Settings) -> None:
    """On PostgreSQL, too, a list bounded by time reads only the weeks of its window."""
    asyncio.run(_check_lists(settings_per_database))
    if not settings_per_database.is_sqlite:
        asyncio.run(_check_pruning(settings_per_database))


async def _check_pruning(settings: Settings) -> None:
    engine = create_engine(settings)
    before = _NOW - timedelta(weeks=3)
    after = _NOW - timedelta(weeks=4)
    try:
        async with engine.connect() as connection:
            for query in (
                MessageFilters(before=before).apply(select(Message.id).where(Message.app_id == "app_t")),
                MessageFilters(after=after, before=before).apply(select(Message.id).where(Message.app_id == "app_t")),
            ):
                compiled = (
                    query.order_by(Message.id.desc())
                    .limit(51)
                    .compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
                )
                plan = "\n".join(row[0] for row in await connection.execute(text(f"EXPLAIN {compiled}")))
                read = set(re.findall(r"message_p(\d{8})", plan))
                later = {f"{partitions.period_of(day.date()):%Y%m%d}" for day in (_NOW, _NOW - timedelta(weeks=1))}
                assert read, plan
                assert not read & later, plan
    finally:
        await engine.dispose()
