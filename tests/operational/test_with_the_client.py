"""Operational webhooks through the official Svix Python client against a running Hookpost:
the endpoint resource, and the events, signed and delivered like any webhook.

This module runs its own Hookpost (not conftest.py's): six attempts a second apart, so a
delivery can fail four times (failing), recover, or run out (exhausted) within a test.
"""

from __future__ import annotations

import json
import secrets
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import standardwebhooks
from svix.api import (
    ApplicationIn,
    EndpointIn,
    EndpointPatch,
    MessageIn,
    OperationalWebhookEndpointHeadersIn,
    OperationalWebhookEndpointIn,
    OperationalWebhookEndpointSecretIn,
    OperationalWebhookEndpointUpsertIn,
    Svix,
    SvixOptions,
)
from svix.exceptions import HttpError

from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import upgrade_to_head
from tests.support.eventually import eventually
from tests.support.processes import api_server, celery_worker
from tests.support.receiver import Receiver
from tests.test_svix_client import DEADLINE, Hookpost, unique


@pytest.fixture(scope="module")
def hookpost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hookpost]:
    settings = make_settings(
        tmp_path_factory.mktemp("operational"), retry_schedule=[0, 0.5, 0.5, 0.5, 0.5, 0.5], scheduler_interval=0.5
    )
    upgrade_to_head(settings)
    with celery_worker(settings) as worker:
        with api_server(settings) as base_url:
            running = Hookpost(base_url, settings.data_dir, worker)
            eventually(running.worker_ready, "the worker ready to consume", timeout=60)
            yield running
        worker.send_signal(signal.SIGTERM)  # as tests/test_svix_client.py: the main process alone
        worker.wait(timeout=30)


@pytest.fixture(scope="module")
def svix(hookpost: Hookpost) -> Svix:
    return Svix(ADMIN_TOKEN, SvixOptions(server_url=hookpost.base_url))


@pytest.fixture(scope="module")
def hooks() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


class Operations:
    """An operational webhook endpoint on its own receiver path, and the events it got."""

    def __init__(self, svix: Svix, hooks: Receiver, hookpost: Hookpost, event_types: list[str] | None) -> None:
        self.hooks, self.hookpost = hooks, hookpost
        self.path = f"/ops/{secrets.token_hex(4)}"
        self.endpoint = svix.operational_webhook.endpoint.create(
            OperationalWebhookEndpointIn(url=hooks.url + self.path, event_types=event_types)
        )
        self.secret = svix.operational_webhook.endpoint.get_secret(self.endpoint.id).key

    def events(self) -> list[dict[str, Any]]:
        requests = self.hooks.received(self.path)
        for request in requests:
            standardwebhooks.Webhook(self.secret).verify(request.body, request.headers)
        return [json.loads(request.body) for request in requests]

    def wait_for(self, event_type: str, **data: object) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next(
                (
                    event
                    for event in self.events()
                    if event["type"] == event_type and all(event["data"].get(k) == v for k, v in data.items())
                ),
                None,
            )

        try:
            return eventually(found, f"{event_type} {data}", timeout=DEADLINE)
        except AssertionError as missing:
            seen = [(event["type"], event["data"]) for event in self.events()]
            raise AssertionError(f"{missing}; seen {seen}; {self.hookpost.worker_state()}") from None


def test_operational_endpoint_resource(svix: Svix, hooks: Receiver) -> None:
    ops = svix.operational_webhook.endpoint
    uid = unique("ops")

    made = ops.create(OperationalWebhookEndpointIn(url=f"{hooks.url}/ops-a", uid=uid, event_types=["endpoint.created"]))
    assert ops.get(uid).id == made.id
    assert made.id in [e.id for e in ops.list().data]
    updated = ops.upsert(made.id, OperationalWebhookEndpointUpsertIn(url=f"{hooks.url}/ops-b", description="v2"))
    assert (updated.url, updated.description) == (f"{hooks.url}/ops-b", "v2")
    old = ops.get_secret(made.id).key
    ops.rotate_secret(made.id, OperationalWebhookEndpointSecretIn())
    assert ops.get_secret(made.id).key not in {old, ""}
    ops.set_headers(made.id, OperationalWebhookEndpointHeadersIn(headers={"X-Ops": "1", "Authorization": "t"}))
    shown = ops.get_headers(made.id)
    assert (shown.headers, shown.sensitive) == ({"X-Ops": "1"}, ["Authorization"])
    ops.delete(made.id)
    with pytest.raises(HttpError) as gone:
        ops.get(made.id)
    assert gone.value.status_code == 404


def test_the_operational_application_stays_hidden(svix: Svix, hooks: Receiver) -> None:
    svix.operational_webhook.endpoint.create(OperationalWebhookEndpointIn(url=f"{hooks.url}/ops-hidden"))

    assert all("operational" not in app.id for app in svix.application.list().data)
    with pytest.raises(HttpError) as hidden:
        svix.application.get("app_hookpost_operational")
    assert hidden.value.status_code == 404
    with pytest.raises(HttpError) as no_messages:
        svix.message.create("app_hookpost_operational", MessageIn(event_type="endpoint.created", payload={}))
    assert no_messages.value.status_code == 404


def test_endpoint_events_are_signed_and_delivered(svix: Svix, hooks: Receiver, hookpost: Hookpost) -> None:
    ops = Operations(svix, hooks, hookpost, event_types=None)
    app = svix.application.create(ApplicationIn(name="Watched", uid=unique("watched")))
    endpoint = svix.endpoint.create(app.id, EndpointIn(url=f"{hooks.url}/watched", uid=unique("ep")))

    created = ops.wait_for("endpoint.created", endpointId=endpoint.id)
    assert created["data"] == {
        "appId": app.id,
        "appUid": app.uid,
        "endpointId": endpoint.id,
        "endpointUid": endpoint.uid,
    }
    svix.endpoint.patch(app.id, endpoint.id, EndpointPatch(description="changed"))
    ops.wait_for("endpoint.updated", endpointId=endpoint.id)
    svix.endpoint.patch(app.id, endpoint.id, EndpointPatch(disabled=True))
    assert ops.wait_for("endpoint.disabled", endpointId=endpoint.id)["data"]["trigger"] == "manual"
    svix.endpoint.patch(app.id, endpoint.id, EndpointPatch(disabled=False))
    ops.wait_for("endpoint.enabled", endpointId=endpoint.id)
    svix.endpoint.delete(app.id, endpoint.id)
    ops.wait_for("endpoint.deleted", endpointId=endpoint.id)


def test_event_types_filter_operational_events(svix: Svix, hooks: Receiver, hookpost: Hookpost) -> None:
    only_deleted = Operations(svix, hooks, hookpost, event_types=["endpoint.deleted"])
    app = svix.application.create(ApplicationIn(name="Filtered"))
    endpoint = svix.endpoint.create(app.id, EndpointIn(url=f"{hooks.url}/filtered"))
    svix.endpoint.delete(app.id, endpoint.id)

    only_deleted.wait_for("endpoint.deleted", endpointId=endpoint.id)
    assert {event["type"] for event in only_deleted.events()} == {"endpoint.deleted"}


def test_deleting_an_application_reports_each_endpoint_deleted(svix: Svix, hooks: Receiver, hookpost: Hookpost) -> None:
    ops = Operations(svix, hooks, hookpost, event_types=["endpoint.deleted"])
    app = svix.application.create(ApplicationIn(name="Closing", uid=unique("closing")))
    endpoints = [svix.endpoint.create(app.id, EndpointIn(url=f"{hooks.url}/closing/{n}")) for n in range(2)]

    svix.application.delete(app.id)

    for endpoint in endpoints:
        deleted = ops.wait_for("endpoint.deleted", endpointId=endpoint.id)
        assert (deleted["data"]["appId"], deleted["data"]["appUid"]) == (app.id, app.uid)


def _attempt_events(svix: Svix, hooks: Receiver, hookpost: Hookpost, answers: list[int]) -> tuple[Operations, str]:
    ops = Operations(svix, hooks, hookpost, event_types=None)
    app = svix.application.create(ApplicationIn(name="Flaky"))
    path = f"/flaky/{secrets.token_hex(4)}"
    hooks.script[path] = [(status, {}) for status in answers]
    svix.endpoint.create(app.id, EndpointIn(url=hooks.url + path))
    msg_id = svix.message.create(app.id, MessageIn(event_type="order.paid", payload={}, event_id=unique("evt"))).id
    return ops, msg_id


def test_failing_then_recovered(svix: Svix, hooks: Receiver, hookpost: Hookpost) -> None:
    ops, msg_id = _attempt_events(svix, hooks, hookpost, [500, 500, 500, 500])  # the fifth answer is 200

    failing = ops.wait_for("message.attempt.failing", msgId=msg_id)
    recovered = ops.wait_for("message.attempt.recovered", msgId=msg_id)

    assert failing["data"]["lastAttempt"]["responseStatusCode"] == 500
    assert recovered["data"]["lastAttempt"]["responseStatusCode"] == 200
    assert not [e for e in ops.events() if e["type"] == "message.attempt.exhausted"]


def test_exhausted(svix: Svix, hooks: Receiver, hookpost: Hookpost) -> None:
    ops, msg_id = _attempt_events(svix, hooks, hookpost, [500] * 6)

    exhausted = ops.wait_for("message.attempt.exhausted", msgId=msg_id)

    assert exhausted["data"]["msgEventId"].startswith("evt-")
    assert exhausted["data"]["lastAttempt"]["responseStatusCode"] == 500
    assert [e["type"] for e in ops.events() if e["data"].get("msgId") == msg_id] == [
        "message.attempt.failing",
        "message.attempt.exhausted",
    ]


def test_a_failing_operational_endpoint_is_retried(svix: Svix, hooks: Receiver, hookpost: Hookpost) -> None:
    ops = Operations(svix, hooks, hookpost, event_types=["endpoint.created"])
    hooks.script[ops.path] = [(503, {})]
    app = svix.application.create(ApplicationIn(name="Retried"))
    endpoint = svix.endpoint.create(app.id, EndpointIn(url=f"{hooks.url}/retried"))

    ops.wait_for("endpoint.created", endpointId=endpoint.id)

    eventually(lambda: len(hooks.received(ops.path)) >= 2, "the event sent again", timeout=DEADLINE)
    first, second = hooks.received(ops.path)[:2]
    assert first.body == second.body, "the retry carries the same event"


def test_an_endpoint_disabled_by_hookpost(svix: Svix, hooks: Receiver, hookpost: Hookpost) -> None:
    ops = Operations(svix, hooks, hookpost, event_types=["endpoint.disabled"])
    app = svix.application.create(ApplicationIn(name="Gone"))
    path = f"/gone/{secrets.token_hex(4)}"
    hooks.script[path] = [(410, {})]
    endpoint = svix.endpoint.create(app.id, EndpointIn(url=hooks.url + path))
    svix.message.create(app.id, MessageIn(event_type="order.paid", payload={}))

    disabled = ops.wait_for("endpoint.disabled", endpointId=endpoint.id)

    assert disabled["data"]["trigger"] == "automatic"
