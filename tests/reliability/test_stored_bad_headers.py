"""Endpoints stored before header values were validated, with values that cannot go on
the wire (U+2028, NEL, NUL, a line break): the API still reads them, and the user can
repair them. The worker fails only their own deliveries (tests/delivery/test_engine.py)."""

from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient
from sqlalchemy import update

from hookpost.app import create_app
from hookpost.settings import Settings
from hookpost.storage.database import create_engine, create_sessionmaker
from hookpost.storage.models import Endpoint
from tests.support.traffic import AUTH

BAD = {"X-Line-Separator": "a\u2028b", "X-Next-Line": "a\x85b", "X-Nul": "a\x00b", "X-Break": "a\nb", "X-Accent": "é"}


async def _store_as_before_validation(settings: Settings, endpoint_id: str, headers: dict[str, str]) -> None:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            await session.execute(update(Endpoint).where(Endpoint.id == endpoint_id).values(headers=headers))
            await session.commit()
    finally:
        await engine.dispose()


def test_an_endpoint_with_stored_bad_header_values_reads_and_can_be_repaired(settings_per_database: Settings) -> None:
    settings = settings_per_database
    with TestClient(create_app(settings), headers=AUTH) as client:
        app_id = client.post("/api/v1/app", json={"name": "Old rows"}).json()["id"]
        base = f"/api/v1/app/{app_id}/endpoint"
        endpoint_id = client.post(base, json={"url": "https://example.com/hook"}).json()["id"]
        asyncio.run(_store_as_before_validation(settings, endpoint_id, {"X-Fine": "ok", **BAD}))

        one = client.get(f"{base}/{endpoint_id}")
        listed = client.get(base)
        headers = client.get(f"{base}/{endpoint_id}/headers")
        assert one.status_code == 200, one.text
        assert listed.status_code == 200, listed.text
        assert headers.status_code == 200, headers.text
        assert headers.json()["headers"] == {"X-Fine": "ok", **BAD}  # shown as stored: the user sees what is wrong

        repaired = client.patch(f"{base}/{endpoint_id}/headers", json={"headers": {}, "deleteHeaders": list(BAD)})
        assert repaired.status_code == 204, repaired.text
        assert client.get(f"{base}/{endpoint_id}/headers").json()["headers"] == {"X-Fine": "ok"}
