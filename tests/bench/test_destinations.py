"""The destinations phase's parts that need no stack: the receiver counting a FIFO batch
message by message (what the phase's rate is computed from), and the report showing each
rate beside the endpoint drain's. The phase itself runs with ``hookpost bench --only
destinations``; it is left out of ``--quick`` (its own stack would add some 30 s to CI)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from hookpost.bench.destinations import FIFO_PATH, set_ratios_to_drain
from hookpost.bench.receiver import receiver_app
from hookpost.bench.report import build_report, markdown
from hookpost.kit.ids import new_id


async def test_receiver_counts_a_batch_message_by_message() -> None:
    ids = [new_id("msg") for _ in range(3)]
    batch = json.dumps([{"id": message_id, "payload": {}} for message_id in ids])
    single = f"/single-{new_id('app')}"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver_app), base_url="http://r") as client:
        assert (await client.post(FIFO_PATH, content=batch, headers={"webhook-id": "a.b"})).status_code == 200
        assert (await client.post(single, content=b"{}", headers={"webhook-id": "msg_one"})).status_code == 200
        stats = (await client.get("/_stats")).json()
        receipts = (await client.get("/_receipts", params={"path": FIFO_PATH})).json()
    assert stats[FIFO_PATH] >= 3
    assert [webhook_id for webhook_id, _ in receipts][-3:] == ids  # each message by its own id
    assert stats[single] == 1  # any other path: one receipt per request, as before


def _drained(name: str, rate: float) -> dict[str, Any]:
    return {"name": name, "config": {"backlog": 1000}, "msg_per_s": rate, "p50_ms": None, "p99_ms": None}


def test_report_shows_each_destination_beside_the_drain() -> None:
    drain = _drained("drain", 200.0)
    fifo, poller = _drained("fifo-destination", 1000.0), _drained("poller", 500.0)
    set_ratios_to_drain(drain, [fifo, poller])
    assert (fifo["ratio_to_drain"], poller["ratio_to_drain"]) == (5.0, 2.5)

    report = build_report(
        [drain, fifo, poller],
        {"quick": True, "generator": "python", "workers": 2},
        {"database": "embedded SQLite", "broker": "embedded filesystem"},
        [],
        datetime.now(UTC),
    )
    rows = {line.split(" | ")[0].lstrip("| "): line for line in markdown(report).splitlines()}
    assert "| 1,000 |" in rows["fifo-destination"]
    assert "5.00x the endpoint drain" in rows["fifo-destination"]
    assert "2.50x the endpoint drain" in rows["poller"]
    # No target is set for destinations: figures only.
    assert not any("destination" in target["name"] or "poller" in target["name"] for target in report["targets"])


def test_no_drain_rate_gives_no_ratio() -> None:
    fifo = _drained("fifo-destination", 1000.0)
    set_ratios_to_drain(_drained("drain", 0.0), [fifo])
    assert fifo["ratio_to_drain"] is None
