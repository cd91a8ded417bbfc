"""Expunging message contents through the official Svix Python client against a running
Hookpost (see conftest.py)."""

from __future__ import annotations

from svix.api import (
    ApplicationIn,
    BackgroundTaskType,
    BulkExpungeContentsIn,
    MessageGetOptions,
    MessageIn,
    Svix,
)

from tests.support.svix_tasks import finished
from tests.test_svix_client import Hookpost, Subscriber


def test_bulk_expunge_blanks_the_named_payloads(subscriber: Subscriber, svix: Svix) -> None:
    app_id = subscriber.app.id
    secret_msg = svix.message.create(app_id, MessageIn(event_type="a", payload={"card": "4242"}, event_id="evt-card"))
    kept = subscriber.send(note="keep me")

    out = svix.message.bulk_expunge_content(app_id, BulkExpungeContentsIn(ids=["evt-card", "msg_nope"]))

    assert {key: str(value) for key, value in out.results.items()} == {"evt-card": "expunged", "msg_nope": "not-found"}
    with_content = MessageGetOptions(with_content=True)
    assert svix.message.get(app_id, secret_msg.id, with_content).payload == {}
    assert svix.message.get(app_id, kept, with_content).payload == {"note": "keep me"}


def test_expunge_all_contents(svix: Svix, hookpost: Hookpost) -> None:
    app = svix.application.create(ApplicationIn(name="Expunge all"))
    other = svix.application.create(ApplicationIn(name="Untouched"))
    ids = [svix.message.create(app.id, MessageIn(event_type="a", payload={"n": n})).id for n in range(3)]
    untouched = svix.message.create(other.id, MessageIn(event_type="a", payload={"n": 9})).id

    task = svix.message.expunge_all_contents(app.id)

    assert task.task == BackgroundTaskType.APPLICATION_PURGE_CONTENT
    assert finished(svix, task.id, hookpost).data["expunged"] == 3
    with_content = MessageGetOptions(with_content=True)
    assert [svix.message.get(app.id, msg_id, with_content).payload for msg_id in ids] == [{}, {}, {}]
    assert svix.message.get(other.id, untouched, with_content).payload == {"n": 9}
