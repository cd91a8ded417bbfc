"""Counts read from the rollup kept as attempts are recorded: endpoint stats, attempt stats and
the usage background tasks, checked against a scan of the rows after real deliveries."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from hookpost.background_tasks.runner import advance_background_tasks
from hookpost.delivery.context import DeliveryContext
from hookpost.settings import Settings
from tests.api.helpers import Json, SendMessage, expect
from tests.support.delivery import deliver_batch, delivery_context
from tests.support.receiver import Receiver

STATES = ("success", "pending", "sending", "fail", "canceled")


def _database(settings: Settings) -> sqlite3.Connection:
    return sqlite3.connect(Path(make_url(settings.database_url).database or ""))


def _stored(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _sqlite_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _scanned(settings: Settings, endpoint_id: str, since: datetime | None, until: datetime | None) -> Json:
    """What the stats said when they were a scan of the endpoint's deliveries."""
    now = datetime.now(UTC)
    counts = Counter[str]()
    with _database(settings) as db:
        rows = db.execute("SELECT status, created_at, lease_until FROM delivery WHERE endpoint_id = ?", (endpoint_id,))
        for status, created_at, lease_until in rows:
            created = _stored(created_at)
            if (since is None or created >= since) and (until is None or created <= until):
                leased = status == 1 and lease_until is not None and _stored(lease_until) > now
                counts["sending" if leased else ("success", "pending", "fail", "sending", "canceled")[status]] += 1
    return {state: counts[state] for state in STATES}


@pytest.fixture
async def delivery(settings: Settings) -> AsyncIterator[DeliveryContext]:
    """A worker's sending, in this process; no retries, so a failed attempt fails its delivery."""
    settings = settings.model_copy(update={"retry_schedule": []})
    async with delivery_context(settings) as context:
        yield context


async def _deliver_due(settings: Settings, context: DeliveryContext) -> None:
    with _database(settings) as db:
        due = [row[0] for row in db.execute("SELECT id FROM delivery WHERE status = 1")]
    await deliver_batch(context, due, fill=False)


async def test_stats_equal_a_scan_after_successes_failures_resends_recovers_and_expunges(
    client: TestClient,
    app_id: str,
    send: SendMessage,
    receiver: Receiver,
    delivery: DeliveryContext,
    settings: Settings,
) -> None:
    receiver.script["/bad"] = [(500, {})] * 4  # its first four attempts fail
    good = expect(client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": receiver.url + "/good"}), 201)["id"]
    bad = expect(client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": receiver.url + "/bad"}), 201)["id"]
    ids = [send(payload={"n": n})["id"] for n in range(8)]
    now = datetime.now(UTC)
    with _database(settings) as db:  # history: messages of earlier hours, created before any attempt
        for n, msg_id in enumerate(ids[:6]):
            db.execute(
                "UPDATE delivery SET created_at = ? WHERE msg_id = ?", (_sqlite_time(now - timedelta(hours=n)), msg_id)
            )

    await _deliver_due(settings, delivery)
    expect(client.post(f"/api/v1/app/{app_id}/msg/{ids[1]}/endpoint/{good}/resend"), 202)
    await _deliver_due(settings, delivery)  # the resend succeeds again: counted once
    expect(client.post(f"/api/v1/app/{app_id}/msg/{ids[2]}/endpoint/{good}/resend"), 202)
    expect(client.post(f"/api/v1/app/{app_id}/msg/bulk-expunge", json={"ids": [ids[2]]}), 200)  # success -> canceled
    recover = {"since": (now - timedelta(hours=2, minutes=30)).isoformat()}
    expect(client.post(f"/api/v1/app/{app_id}/endpoint/{bad}/recover", json=recover), 202)
    await advance_background_tasks(delivery.sessionmaker)
    await _deliver_due(settings, delivery)  # the bad endpoint's recovered deliveries, failing or not

    windows = [
        (None, None),
        (now - timedelta(hours=3, minutes=30), None),
        (None, now - timedelta(hours=1, minutes=15)),
        (now - timedelta(hours=4, minutes=50), now - timedelta(minutes=10)),
        (now - timedelta(minutes=20), now + timedelta(minutes=5)),
        (now + timedelta(hours=1), None),
    ]
    for endpoint_id in (good, bad):
        for since, until in windows:
            params = {k: v.isoformat() for k, v in (("since", since), ("until", until)) if v is not None}
            stats = expect(client.get(f"/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats", params=params), 200)
            assert stats == _scanned(settings, endpoint_id, since, until), (endpoint_id, params)
    all_stats = expect(client.get(f"/api/v1/app/{app_id}/endpoint/{good}/stats"), 200)
    assert all_stats == {"success": 7, "pending": 0, "sending": 0, "fail": 0, "canceled": 1}

    for endpoint_id in (good, bad):
        with _database(settings) as db:
            made = Counter(
                row[0] for row in db.execute("SELECT status FROM attempt WHERE endpoint_id = ?", (endpoint_id,))
            )
        attempts = expect(client.get(f"/api/v1/app/{app_id}/endpoint/{endpoint_id}/attempt-stats"), 200)
        canceled = 1 if endpoint_id == good else 0
        assert attempts == {"success": made[0], "fail": made[2], "canceled": canceled}
    later = {"since": (now + timedelta(hours=2)).isoformat()}
    assert expect(client.get(f"/api/v1/app/{app_id}/endpoint/{bad}/attempt-stats", params=later), 200) == {
        "success": 0,
        "fail": 0,
        "canceled": 0,
    }


def test_usage_stats_name_an_application_by_id_or_by_uid_never_both(client: TestClient, settings: Settings) -> None:
    """An application whose uid is another's id (as an old database may hold one) is not counted
    when the other's id is asked for."""
    asked = expect(client.post("/api/v1/app", json={"name": "asked"}), 201)["id"]
    other = expect(client.post("/api/v1/app", json={"name": "other"}), 201)["id"]
    with _database(settings) as database:
        database.execute("UPDATE application SET uid = ? WHERE id = ?", (asked, other))
    window = {"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"}

    task = expect(client.post("/api/v1/stats/usage/app", json={**window, "appIds": [asked]}), 202)

    assert task["unresolvedAppIds"] == []
    assert expect(client.get(f"/api/v1/background-task/{task['id']}"), 200)["data"]["appIds"] == [asked]
