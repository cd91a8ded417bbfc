"""Svix inputs Hookpost once ignored, through the official Svix Python client against a
running Hookpost (see conftest.py)."""

from __future__ import annotations

import base64
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks
from svix.api import (
    ApplicationCreateOptions,
    ApplicationIn,
    EndpointIn,
    EventTypeUpsertIn,
    MessageAttemptListByEndpointOptions,
    MessageAttemptListByMsgOptions,
    MessageIn,
    MessageListOptions,
    MessageStatus,
    StatusCodeClass,
    Svix,
)
from svix.exceptions import HttpError, HTTPValidationError

from tests.support.receiver import Receiver
from tests.test_svix_client import DEADLINE, Hookpost, Subscriber, unique


def test_deliver_at_holds_the_delivery_until_then(subscriber: Subscriber, svix: Svix) -> None:
    app_id = subscriber.app.id
    deliver_at = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
    right_away = subscriber.send("now")

    message = svix.message.create(app_id, MessageIn(event_type="later", payload={"n": 1}, deliver_at=deliver_at))

    assert message.deliver_at == deliver_at
    listed = {m.id: m for m in svix.message.list(app_id).data}
    assert listed[message.id].deliver_at == deliver_at
    assert listed[right_away].deliver_at is None
    subscriber.wait_for_requests(right_away)
    [request] = subscriber.wait_for_requests(message.id)
    assert request.received_at >= deliver_at.timestamp(), "delivered before its deliverAt"
    [attempt] = subscriber.wait_for_attempts(message.id, 1)
    assert attempt.timestamp >= deliver_at


def test_message_list_channel_and_tag(subscriber: Subscriber, svix: Svix) -> None:
    app_id = subscriber.app.id
    eu = svix.message.create(app_id, MessageIn(event_type="a", payload={}, channels=["eu"], tags=["vip"])).id
    us = svix.message.create(app_id, MessageIn(event_type="a", payload={}, channels=["us"])).id

    def ids(options: MessageListOptions) -> list[str]:
        return [m.id for m in svix.message.list(app_id, options).data]

    assert ids(MessageListOptions(channel="eu")) == [eu]
    assert ids(MessageListOptions(channel="us")) == [us]
    assert ids(MessageListOptions(tag="vip")) == [eu]
    assert ids(MessageListOptions(channel="nobody")) == []


def test_attempt_list_filters(svix: Svix, hookpost: Hookpost, hooks: Receiver) -> None:
    app = svix.application.create(ApplicationIn(name="Filters"))
    flaky_path, steady_path = f"/flaky/{secrets.token_hex(4)}", f"/steady/{secrets.token_hex(4)}"
    hooks.script[flaky_path] = [(400, {})]  # its first request is refused; the retry succeeds
    svix.event_type.upsert("order.paid", EventTypeUpsertIn(description="what the flaky endpoint wants"))
    flaky = svix.endpoint.create(app.id, EndpointIn(url=hooks.url + flaky_path, event_types=["order.paid"]))
    steady = svix.endpoint.create(app.id, EndpointIn(url=hooks.url + steady_path, uid=unique("steady")))
    paid = svix.message.create(
        app.id, MessageIn(event_type="order.paid", payload={"n": 1}, channels=["eu"], tags=["vip"])
    ).id

    def attempts_of(msg_id: str, count: int) -> None:
        def enough() -> bool | None:
            return len(svix.message_attempt.list_by_msg(app.id, msg_id).data) >= count or None

        deadline = time.monotonic() + 30
        while not enough():
            assert time.monotonic() < deadline, f"{count} attempts of {msg_id}; {hookpost.worker_state()}"
            time.sleep(0.05)  # polling interval, bounded by the deadline

    attempts_of(paid, 3)  # flaky: 400 then 200; steady: 200
    shipped = svix.message.create(app.id, MessageIn(event_type="order.shipped", payload={"n": 2})).id
    attempts_of(shipped, 1)  # steady only: flaky takes order.paid alone

    def by_endpoint(endpoint_id: str, **options: object) -> list[tuple[str, int]]:
        page = svix.message_attempt.list_by_endpoint(
            app.id, endpoint_id, MessageAttemptListByEndpointOptions(**options)
        )
        return [(a.msg_id, a.response_status_code) for a in page.data]

    assert by_endpoint(flaky.id) == [(paid, 200), (paid, 400)]
    assert by_endpoint(flaky.id, status=MessageStatus.FAIL) == [(paid, 400)]
    assert by_endpoint(flaky.id, status_code_class=StatusCodeClass.CODE4XX) == [(paid, 400)]
    assert by_endpoint(flaky.id, status_code_class=StatusCodeClass.CODE2XX) == [(paid, 200)]
    assert by_endpoint(flaky.id, status_code_class=StatusCodeClass.CODE5XX) == []
    assert by_endpoint(steady.id, event_types=["order.shipped"]) == [(shipped, 200)]
    assert by_endpoint(steady.id, channel="eu") == [(paid, 200)]
    assert by_endpoint(steady.id, tag="vip") == [(paid, 200)]
    assert by_endpoint(steady.id, tag="nobody") == []

    # The v2 clients ask for no content unless told.
    [without] = svix.message_attempt.list_by_endpoint(
        app.id, steady.id, MessageAttemptListByEndpointOptions(tag="vip")
    ).data
    assert (without.response, without.msg) == ("", None)
    [full] = svix.message_attempt.list_by_endpoint(
        app.id, steady.id, MessageAttemptListByEndpointOptions(tag="vip", with_content=True, with_msg=True)
    ).data
    assert full.response == "ok"
    assert full.msg is not None
    assert (full.msg.id, full.msg.event_type, full.msg.channels, full.msg.payload) == (paid, "order.paid", ["eu"], {})

    def by_message(**options: object) -> set[str]:
        page = svix.message_attempt.list_by_msg(app.id, paid, MessageAttemptListByMsgOptions(**options))
        return {a.endpoint_id for a in page.data}

    assert by_message() == {flaky.id, steady.id}
    assert by_message(endpoint_id=steady.id) == {steady.id}
    assert by_message(endpoint_id=steady.uid) == {steady.id}
    assert by_message(status=MessageStatus.FAIL) == {flaky.id}


def test_a_bare_base64_secret_signs(subscriber: Subscriber, svix: Svix) -> None:
    key = base64.b64encode(secrets.token_bytes(24)).decode()
    path = f"/bare/{secrets.token_hex(4)}"
    endpoint = svix.endpoint.create(subscriber.app.id, EndpointIn(url=subscriber.hooks.url + path, secret=key))
    subscriber.path = path

    [request] = subscriber.wait_for_requests(subscriber.send())

    assert svix.endpoint.get_secret(subscriber.app.id, endpoint.id).key == "whsec_" + key
    standardwebhooks.Webhook("whsec_" + key).verify(request.body, request.headers)


def test_idempotency_key_with_the_client(svix: Svix) -> None:
    key, uid = unique("idem"), unique("idem-app")

    first = svix.application.create(ApplicationIn(name="Once", uid=uid), ApplicationCreateOptions(idempotency_key=key))
    again = svix.application.create(ApplicationIn(name="Once", uid=uid), ApplicationCreateOptions(idempotency_key=key))

    assert again.id == first.id
    with pytest.raises(HttpError) as other_body:
        svix.application.create(ApplicationIn(name="Twice", uid=uid), ApplicationCreateOptions(idempotency_key=key))
    assert (other_body.value.status_code, other_body.value.code) == (409, "conflict")


def test_transformations_params_is_refused(subscriber: Subscriber, svix: Svix) -> None:
    with pytest.raises(HTTPValidationError) as error:
        svix.message.create(
            subscriber.app.id, MessageIn(event_type="a", payload={}, transformations_params={"rawPayload": "x"})
        )

    assert error.value.status_code == 422
    assert error.value.detail[0].loc == ["body", "transformationsParams"]
    assert "not supported" in error.value.detail[0].msg


def test_idempotency_key_sent_concurrently_runs_once(svix: Svix) -> None:
    key, uid = unique("idem"), unique("racing")
    request = ApplicationIn(name="Racing", uid=uid)
    start = threading.Barrier(6)

    def create() -> str:
        start.wait(timeout=DEADLINE)
        return svix.application.create(request, ApplicationCreateOptions(idempotency_key=key)).id

    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = list(pool.map(lambda _: create(), range(6)))

    assert len(set(ids)) == 1, ids
    assert svix.application.get(uid).id == ids[0]
