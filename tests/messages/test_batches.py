"""Messages stored in batches (MessageWriter): concurrent requests, repeats inside one batch,
unknown applications, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from hookpost.kit.ids import new_id
from hookpost.messages.schemas import MessageIn
from hookpost.messages.statements import _fetch
from hookpost.messages.writer import MessageWriter, NewMessage
from hookpost.settings import Settings
from hookpost.storage.database import (
    create_engine,
    create_sessionmaker,
    database_refused_value,
    database_unavailable,
)
from hookpost.storage.models import Application, Delivery, Endpoint, Message
from tests.conftest import make_settings
from tests.support.databases import fresh_postgres_database, upgrade_to_head


def _message(**fields: object) -> MessageIn:
    return MessageIn.model_validate({"eventType": "invoice.paid", "payload": {"n": 1}, **fields})


class _Engines:
    """The writer's engines, as the API's lifespan makes them: on PostgreSQL the batches have
    an autocommit engine of their own, without pre-ping."""

    def __init__(self, settings: Settings) -> None:
        self.engine = create_engine(settings)
        self.batch = self.engine if settings.is_sqlite else create_engine(settings, autocommit=True, pre_ping=False)

    async def dispose(self) -> None:
        await self.engine.dispose()
        await self.batch.dispose()


async def _setup(settings: Settings, endpoints: int = 1) -> tuple[MessageWriter, _Engines]:
    engines = _Engines(settings)
    sessionmaker = create_sessionmaker(engines.engine)
    async with sessionmaker() as session:
        app_id = new_id("app")
        session.add(Application(id=app_id, uid="acme", name="Acme"))
        await session.flush()
        for n in range(endpoints):
            session.add(Endpoint(id=new_id("ep"), app_id=app_id, url=f"https://example.com/{n}", secret="whsec_x"))
        await session.commit()
    return MessageWriter(sessionmaker, settings, create_sessionmaker(engines.batch)), engines


async def _count(writer: MessageWriter, model: type[Message] | type[Delivery]) -> int:
    async with writer._sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def test_concurrent_messages_are_stored_with_a_delivery_per_endpoint(settings_per_database: Settings) -> None:
    async def scenario() -> None:
        writer, engine = await _setup(settings_per_database, endpoints=2)
        accepted = await asyncio.gather(*(writer.submit(NewMessage("acme", _message(), None)) for _ in range(30)))
        assert all(a is not None for a in accepted)
        ids = {a.message.id for a in accepted if a is not None}
        assert len(ids) == 30
        assert all(len(a.delivery_ids) == 2 for a in accepted if a is not None)
        assert await _count(writer, Message) == 30
        assert await _count(writer, Delivery) == 60
        await engine.dispose()

    asyncio.run(scenario())


def test_repeats_of_a_key_in_one_batch_get_the_first_message_and_nothing_more(settings_per_database: Settings) -> None:
    async def scenario() -> None:
        writer, engine = await _setup(settings_per_database)
        accepted = await asyncio.gather(
            *(writer.submit(NewMessage("acme", _message(eventId="evt-1"), "key-1")) for _ in range(10)),
            *(writer.submit(NewMessage("acme", _message(), "key-2")) for _ in range(5)),
        )
        first, second = accepted[:10], accepted[10:]
        assert len({a.message.id for a in first if a is not None}) == 1
        assert len({a.message.id for a in second if a is not None}) == 1
        assert sum(len(a.delivery_ids) for a in accepted if a is not None) == 2
        assert await _count(writer, Message) == 2
        assert await _count(writer, Delivery) == 2

        again = await writer.submit(NewMessage("acme", _message(), "key-1"))
        assert again is not None
        assert first[0] is not None
        assert again.message.id == first[0].message.id
        assert again.delivery_ids == []
        await engine.dispose()

    asyncio.run(scenario())


def test_an_unknown_application_is_left_to_the_caller(settings_per_database: Settings) -> None:
    async def scenario() -> None:
        writer, engine = await _setup(settings_per_database)
        known, unknown = await asyncio.gather(
            writer.submit(NewMessage("acme", _message(), None)), writer.submit(NewMessage("nobody", _message(), None))
        )
        assert known is not None
        assert unknown is None
        assert await _count(writer, Message) == 1
        await engine.dispose()

    asyncio.run(scenario())


def test_the_api_answers_202_for_concurrent_posts(client: TestClient) -> None:
    client.post("/api/v1/app", json={"name": "Acme", "uid": "acme-api"}).raise_for_status()
    answers = [client.post("/api/v1/app/acme-api/msg", json={"eventType": "e", "payload": {"n": n}}) for n in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert [a.json()["payload"] for a in answers] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_one_message_the_database_refuses_fails_only_its_own_request(settings_per_database: Settings) -> None:
    """Content the request checks would refuse, forced past them: the batch it lands in must
    still store every other request's message."""

    async def scenario() -> None:
        writer, engine = await _setup(settings_per_database, endpoints=1)
        poisoned = _message(payload={"bad": "x"})
        poisoned._payload_json = '{"bad":"\ud800"}'  # a lone surrogate: no database can encode it
        items = [NewMessage("acme", _message(payload={"n": n}), None) for n in range(40)]
        items.insert(17, NewMessage("acme", poisoned, None))

        outcomes = await asyncio.gather(*(writer.submit(item) for item in items), return_exceptions=True)

        failed = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        assert len(failed) == 1, failed
        assert outcomes[17] is failed[0]
        assert await _count(writer, Message) == 40
        assert await _count(writer, Delivery) == 40
        await engine.dispose()

    asyncio.run(scenario())


def test_a_batch_statement_that_fails_on_postgresql_is_reported_as_sqlalchemy_reports_it(tmp_path: Path) -> None:
    """The batch statements run on the asyncpg connection itself; their errors must still be
    SQLAlchemy's, which the API maps to a 422 or a 503 (``database_refused_value``,
    ``database_unavailable``), and the connection must stay usable."""

    async def scenario(url: str) -> None:
        engine = create_engine(make_settings(tmp_path, database_url=url), autocommit=True)
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError) as refused:
                await _fetch(connection, "SELECT 1 / $1::int", (0,))  # division by zero: SQLSTATE 22012
            assert database_refused_value(refused.value)
            assert not database_unavailable(refused.value)
            assert await _fetch(connection, "SELECT $1::int + 1", (1,)) == [(2,)]
        await engine.dispose()

    with fresh_postgres_database() as url:
        asyncio.run(scenario(url))


def test_a_batch_after_the_server_dropped_its_pooled_connection_is_stored(tmp_path: Path) -> None:
    """The batch engine does not pre-ping: a pooled connection the server has dropped (as a
    restart does) must cost a retry of the batch's first read, not the batch."""

    async def scenario(settings: Settings) -> None:
        writer, engines = await _setup(settings)
        assert await writer.submit(NewMessage("acme", _message(), None)) is not None  # pools a connection
        async with engines.engine.connect() as connection:
            dropped = await connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        assert dropped
        accepted = await writer.submit(NewMessage("acme", _message(), None))
        assert accepted is not None
        assert accepted.created
        assert await _count(writer, Message) == 2
        await engines.dispose()

    with fresh_postgres_database() as url:
        settings = make_settings(tmp_path, database_url=url)
        upgrade_to_head(settings)
        asyncio.run(scenario(settings))
