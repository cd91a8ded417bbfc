"""The message list filtered by channel or tag: exactly the messages holding that member
(LIKE's wildcards and the escape character taken literally), and on PostgreSQL a rare
channel is found through its GIN index, not by reading the application's history."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from hookpost.kit.ids import first_id_at
from hookpost.kit.pagination import PageParams
from hookpost.messages.service import MessageFilters, message_page
from hookpost.settings import Settings
from hookpost.storage import partitions
from hookpost.storage.database import create_engine, create_sessionmaker
from hookpost.storage.models import Application, Message
from tests.conftest import make_settings
from tests.support.databases import fresh_postgres_database, upgrade_to_head

# Members a LIKE pattern would widen if they were not escaped, and members that hold another.
_MEMBERS = ["a_b", "axb", "a%b", "a/b", "a//b", "ab", "b", "caf\u00e9", '"q"']
_FILTERS = ["a_b", "a%b", "a/b", "ab", "b", "caf\u00e9", '"q"', "absent"]


async def _page_all(session: Any, application: Application, filters: MessageFilters) -> list[str]:
    page = await message_page(session, application, PageParams(250, None), filters)
    assert page.done
    return [message.id for message in page.items]


async def _check_members(settings: Settings) -> None:
    engine = create_engine(settings)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    rows = []
    for n in range(3 * len(_MEMBERS)):
        channels = [_MEMBERS[n % len(_MEMBERS)], _MEMBERS[(n * 5) % len(_MEMBERS)]] if n % 3 else None
        tags = [_MEMBERS[(n * 2) % len(_MEMBERS)]] if n % 2 else None
        rows.append((first_id_at("msg", now_ms - 1000 + n), channels, tags))
    try:
        async with create_sessionmaker(engine)() as session:
            application = Application(id="app_f", name="f")
            session.add(application)
            session.add_all(
                Message(id=i, app_id="app_f", event_type="t", payload="{}", channels=c, tags=t) for i, c, t in rows
            )
            await session.commit()
            for member in _FILTERS:
                by_channel = sorted((i for i, c, _ in rows if member in (c or [])), reverse=True)
                by_tag = sorted((i for i, _, t in rows if member in (t or [])), reverse=True)
                assert await _page_all(session, application, MessageFilters(channel=member)) == by_channel, member
                assert await _page_all(session, application, MessageFilters(tag=member)) == by_tag, member
            assert await _page_all(session, application, MessageFilters(channel="a_b", tag="a/b")) == sorted(
                (i for i, c, t in rows if "a_b" in (c or []) and "a/b" in (t or [])), reverse=True
            )
    finally:
        await engine.dispose()


def test_channel_and_tag_filters_match_members_exactly(settings_per_database: Settings) -> None:
    asyncio.run(_check_members(settings_per_database))


_MESSAGES = 20_000
_RARE_EVERY = 1_000


async def _plan_of_rare_channel(settings: Settings) -> tuple[list[str], set[str]]:
    """The index scans of a rare channel's first page over 20,000 messages, and the names of
    the partition indexes that belong to ``ix_message_channels``."""
    engine = create_engine(settings)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    try:
        async with engine.begin() as connection:
            for statement in partitions.create_period_statements(datetime.now(UTC).date()):
                await connection.execute(text(statement))
            await connection.execute(insert(Application).values(id="app_r", name="r"))
            await connection.execute(
                insert(Message),
                [
                    {
                        "id": first_id_at("msg", now_ms - _MESSAGES + n),
                        "app_id": "app_r",
                        "event_type": "t",
                        "payload": "{}",
                        "channels": ["rare"] if n % _RARE_EVERY == 0 else ["common", f"c{n % 7}"],
                    }
                    for n in range(_MESSAGES)
                ],
            )
            await connection.execute(text("ANALYZE message"))
        query = (
            MessageFilters(channel="rare")
            .apply(select(Message.id).where(Message.app_id == "app_r"))
            .order_by(Message.id.desc())
            .limit(51)
        )
        compiled = query.compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
        async with engine.connect() as connection:
            plan = (await connection.execute(text(f"EXPLAIN (FORMAT JSON) {compiled}"))).scalar_one()
            children = await connection.execute(
                text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'ix_message_channels'"
                )
            )
            channel_indexes = {row[0] for row in children}
    finally:
        await engine.dispose()

    def index_names(node: dict[str, Any]) -> list[str]:
        found = [node["Index Name"]] if "Index Name" in node else []
        for child in node.get("Plans", []):
            found += index_names(child)
        return found

    return index_names((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]), channel_indexes


@pytest.mark.postgres
def test_rare_channel_is_read_through_its_index(tmp_path: Path) -> None:
    with fresh_postgres_database() as url:
        settings = make_settings(tmp_path, database_url=url)
        upgrade_to_head(settings)
        used, channel_indexes = asyncio.run(_plan_of_rare_channel(settings))
    assert channel_indexes, "ix_message_channels has no partition indexes"
    assert set(used) & channel_indexes, used
