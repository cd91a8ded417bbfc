"""Replay through the official Svix Python client against a running Hookpost (see conftest.py):
replay missing, bulk replay with its filters, and the background tasks they make."""

from __future__ import annotations

import secrets

from svix.api import (
    ApplicationIn,
    BackgroundTaskListOptions,
    BackgroundTaskStatus,
    BackgroundTaskType,
    BulkReplayIn,
    EndpointIn,
    EventTypeUpsertIn,
    MessageIn,
    MessageStatus,
    ReplayIn,
    StatusCodeClass,
    Svix,
)

from tests.support.eventually import eventually
from tests.support.receiver import Receiver
from tests.support.svix_tasks import an_hour_ago, and_worker_state, finished
from tests.test_svix_client import DEADLINE, Hookpost, Subscriber


def test_replay_missing_sends_what_the_endpoint_never_got(svix: Svix, hookpost: Hookpost, hooks: Receiver) -> None:
    app = svix.application.create(ApplicationIn(name="Replay missing"))
    before = svix.message.create(app.id, MessageIn(event_type="a", payload={"n": 1})).id  # no endpoint yet
    unwanted = svix.message.create(app.id, MessageIn(event_type="b", payload={"n": 2})).id
    path = f"/late/{secrets.token_hex(4)}"
    svix.event_type.upsert("a", EventTypeUpsertIn(description="what the endpoint wants"))
    endpoint = svix.endpoint.create(app.id, EndpointIn(url=hooks.url + path, event_types=["a"]))
    after = svix.message.create(app.id, MessageIn(event_type="a", payload={"n": 3})).id

    def ids() -> list[str]:
        return [r.headers["webhook-id"] for r in hooks.received(path)]

    eventually(
        lambda: ids() or None,
        and_worker_state("the message sent after the endpoint was made", hookpost),
        timeout=DEADLINE,
    )
    replay = svix.endpoint.replay_missing(app.id, endpoint.id, ReplayIn(since=an_hour_ago()))

    assert replay.task == BackgroundTaskType.ENDPOINT_REPLAY
    task = finished(svix, replay.id, hookpost)
    assert task.data["replayed"] == 1
    eventually(
        lambda: before in ids() or None,
        and_worker_state("the message sent before the endpoint existed", hookpost),
        timeout=DEADLINE,
    )
    assert sorted(ids()) == sorted([before, after]), "each once; the unwanted event type never"
    assert unwanted not in ids()
    # Nothing is missing any more: a second replay sends nothing.
    second = svix.endpoint.replay_missing(app.id, endpoint.id, ReplayIn(since=an_hour_ago()))
    again = finished(svix, second.id, hookpost)
    assert again.data["replayed"] == 0


def test_bulk_replay_sends_again_what_matches(subscriber: Subscriber, svix: Svix, hookpost: Hookpost) -> None:
    app_id, endpoint_id = subscriber.app.id, subscriber.endpoint.id
    paid = subscriber.send("order.paid")
    shipped = subscriber.send("order.shipped")
    subscriber.wait_for_attempts(paid, 1)
    subscriber.wait_for_attempts(shipped, 1)

    only_paid = BulkReplayIn(since=an_hour_ago(), event_types=["order.paid"])
    replay = svix.endpoint.bulk_replay(app_id, endpoint_id, only_paid)

    assert replay.task == BackgroundTaskType.ENDPOINT_BULK_REPLAY
    assert finished(svix, replay.id, hookpost).data["replayed"] == 1
    assert len(subscriber.wait_for_requests(paid, count=2)) == 2
    subscriber.wait_for_attempts(paid, 2)
    assert len(subscriber.of(subscriber.hooks.received(subscriber.path), shipped)) == 1


def test_bulk_replay_by_status_and_status_code_class(svix: Svix, hookpost: Hookpost, hooks: Receiver) -> None:
    app = svix.application.create(ApplicationIn(name="Bulk replay filters"))
    path = f"/failing/{secrets.token_hex(4)}"
    hooks.script[path] = [(500, {})] * 3  # the first message's every attempt (three in these tests)
    endpoint = svix.endpoint.create(app.id, EndpointIn(url=hooks.url + path))
    failed = svix.message.create(app.id, MessageIn(event_type="a", payload={"n": 1})).id

    def attempts(msg_id: str) -> int:
        return len(svix.message_attempt.list_by_msg(app.id, msg_id).data)

    eventually(
        lambda: attempts(failed) >= 3 or None,
        and_worker_state("the first message's three failed attempts", hookpost),
        timeout=DEADLINE,
    )
    delivered = svix.message.create(app.id, MessageIn(event_type="a", payload={"n": 2})).id
    eventually(
        lambda: attempts(delivered) >= 1 or None,
        and_worker_state("the second message delivered", hookpost),
        timeout=DEADLINE,
    )

    by_status = BulkReplayIn(since=an_hour_ago(), status=MessageStatus.FAIL)
    assert finished(svix, svix.endpoint.bulk_replay(app.id, endpoint.id, by_status).id, hookpost).data["replayed"] == 1
    eventually(
        lambda: attempts(failed) >= 4 or None,
        and_worker_state("the failed message sent again", hookpost),
        timeout=DEADLINE,
    )
    by_class = BulkReplayIn(since=an_hour_ago(), status_code_class=StatusCodeClass.CODE2XX)
    task = finished(svix, svix.endpoint.bulk_replay(app.id, endpoint.id, by_class).id, hookpost)
    assert task.data["replayed"] == 2, "both now ended with a 2xx"


def test_background_tasks_list(subscriber: Subscriber, svix: Svix, hookpost: Hookpost) -> None:
    app_id, endpoint_id = subscriber.app.id, subscriber.endpoint.id
    task = svix.endpoint.replay_missing(app_id, endpoint_id, ReplayIn(since=an_hour_ago()))
    finished(svix, task.id, hookpost)

    listed = svix.background_task.list(BackgroundTaskListOptions(task=BackgroundTaskType.ENDPOINT_REPLAY)).data
    assert task.id in [t.id for t in listed]
    assert {t.task for t in listed} == {BackgroundTaskType.ENDPOINT_REPLAY}
    running = svix.background_task.list(BackgroundTaskListOptions(status=BackgroundTaskStatus.RUNNING)).data
    assert task.id not in [t.id for t in running]
