"""The official Svix Python client's destination and message.poller APIs against a running
Hookpost (an API server on loopback; nothing here is pushed, so no worker)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from svix.api import (
    ApplicationIn,
    AppPortalAccessIn,
    DestinationIn,
    DestinationListOptions,
    DestinationPatch,
    EndpointSecretRotateIn,
    MessageIn,
    MessagePollerConsumerPollOptions,
    MessagePollerPollOptions,
    PollingEndpointConsumerSeekIn,
    Svix,
    SvixOptions,
)
from svix.exceptions import HttpError, HTTPValidationError
from svix.models import DestinationStatus, DestinationStatusIn, RabbitMqConfigIn

from hookpost.settings import Settings
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import upgrade_to_head
from tests.support.processes import api_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    # Messages handed to pollers once committed (the API commits before it answers).
    settings = make_settings(
        tmp_path_factory.mktemp("svix-destinations"), require_known_event_types=False, poller_settle=0.0
    )
    upgrade_to_head(settings)
    with api_server(settings) as base_url:
        yield base_url, settings


@pytest.fixture(scope="module")
def svix(server: tuple[str, Settings]) -> Svix:
    return Svix(ADMIN_TOKEN, SvixOptions(server_url=server[0]))


@pytest.fixture
def app_id(svix: Svix) -> str:
    return svix.application.create(ApplicationIn(name=f"dest-{secrets.token_hex(4)}")).id


def test_the_seven_destination_methods(svix: Svix, app_id: str) -> None:
    destination = svix.destination
    created = destination.create(
        app_id, DestinationIn(type="pollingEndpoint", uid="poller", event_types=["order.paid"], metadata={"k": "v"})
    )
    assert (created.type, created.status, created.uid) == ("pollingEndpoint", DestinationStatus.ENABLED, "poller")
    assert created.event_types == ["order.paid"]
    assert created.metadata == {"k": "v"}

    assert destination.get(app_id, "poller").id == created.id
    listed = destination.list(app_id, DestinationListOptions(limit=10))
    assert [item.id for item in listed.data] == [created.id]
    assert listed.done

    patched = destination.patch(
        app_id,
        created.id,
        DestinationPatch(type="pollingEndpoint", channels=["eu"], status=DestinationStatusIn.DISABLED),
    )
    assert (patched.channels, patched.event_types, patched.status) == (
        ["eu"],
        ["order.paid"],
        DestinationStatus.DISABLED,
    )

    upserted = destination.upsert(
        app_id, "orders-fifo", DestinationIn(type="fifoEndpoint", config={"url": "https://127.0.0.1:9/fifo"})
    )
    assert (upserted.uid, upserted.status, upserted.failure_reason) == ("orders-fifo", DestinationStatus.ENABLED, None)
    assert upserted.config.url == "https://127.0.0.1:9/fifo"  # type: ignore[union-attr]
    replaced = destination.upsert(
        app_id,
        "orders-fifo",
        DestinationIn(type="fifoEndpoint", batch_size=10, config={"url": "https://127.0.0.1:9/b"}),
    )
    assert (replaced.id, replaced.batch_size) == (upserted.id, 10)

    key = destination.rotate_secret(app_id, "orders-fifo", EndpointSecretRotateIn()).key
    assert key.startswith("whsec_")
    with pytest.raises(HttpError) as refused:
        destination.rotate_secret(app_id, created.id, EndpointSecretRotateIn())
    assert refused.value.status_code == 409

    destination.delete(app_id, created.id)
    with pytest.raises(HttpError) as gone:
        destination.get(app_id, created.id)
    assert gone.value.status_code == 404
    assert [item.id for item in destination.list(app_id).data] == [upserted.id]


def test_a_queue_destination_through_the_client(svix: Svix, app_id: str) -> None:
    made = svix.destination.create(
        app_id,
        DestinationIn(
            type="rabbitMq",
            config=RabbitMqConfigIn(uri="amqp://guest:guest@127.0.0.1:5672/%2F", routing_key="hooks"),
        ),
    )
    assert (made.status, made.failure_reason) == (DestinationStatus.ENABLED, None)
    assert made.config.uri == "amqp://guest:***@127.0.0.1:5672/%2F"  # type: ignore[union-attr]
    assert made.config.mandatory is False  # type: ignore[union-attr]


def test_an_unsupported_type_is_a_validation_error(svix: Svix, app_id: str) -> None:
    with pytest.raises(HTTPValidationError):
        svix.destination.create(app_id, DestinationIn(type="sns", config={"topicArn": "arn:x", "region": "us-east-1"}))


def test_poll_consumer_poll_and_consumer_seek(svix: Svix, app_id: str) -> None:
    sink = svix.destination.create(app_id, DestinationIn(type="pollingEndpoint", channels=["eu"])).id
    sent = [
        svix.message.create(app_id, MessageIn(event_type="order.paid", payload={"n": n}, channels=["eu"])).id
        for n in range(3)
    ]
    svix.message.create(app_id, MessageIn(event_type="order.paid", payload={"n": 9}, channels=["us"]))
    poller = svix.message.poller

    first = poller.poll(app_id, sink, MessagePollerPollOptions(limit=2))
    assert [message.id for message in first.data] == sent[:2]
    assert first.data[0].payload == {"n": 0}
    assert first.data[0].channels == ["eu"]
    assert not first.done
    rest = poller.poll(app_id, sink, MessagePollerPollOptions(iterator=first.iterator))
    assert [message.id for message in rest.data] == sent[2:]
    assert rest.done
    # Retried with the same iterator: the same messages.
    again = poller.poll(app_id, sink, MessagePollerPollOptions(iterator=first.iterator))
    assert [message.id for message in again.data] == sent[2:]

    taken = poller.consumer_poll(app_id, sink, "billing", MessagePollerConsumerPollOptions(limit=2))
    assert [message.id for message in taken.data] == sent[:2]
    assert [message.id for message in poller.consumer_poll(app_id, sink, "billing").data] == sent[2:]
    assert poller.consumer_poll(app_id, sink, "billing").data == []

    seek = poller.consumer_seek(
        app_id, sink, "billing", PollingEndpointConsumerSeekIn(after=datetime.now(UTC) - timedelta(hours=1))
    )
    assert seek.iterator
    assert [message.id for message in poller.consumer_poll(app_id, sink, "billing").data] == sent


def test_a_scoped_token_cannot_read_another_applications_poller(svix: Svix, server: tuple[str, Settings]) -> None:
    mine = svix.application.create(ApplicationIn(name="mine")).id
    theirs = svix.application.create(ApplicationIn(name="theirs")).id
    their_sink = svix.destination.create(theirs, DestinationIn(type="pollingEndpoint")).id
    svix.message.create(theirs, MessageIn(event_type="secret.made", payload={"theirs": True}))
    token = svix.authentication.app_portal_access(mine, AppPortalAccessIn()).token
    scoped = Svix(token, SvixOptions(server_url=server[0]))

    for call in (
        lambda: scoped.message.poller.poll(theirs, their_sink),
        lambda: scoped.message.poller.consumer_poll(theirs, their_sink, "c"),
        lambda: scoped.message.poller.consumer_seek(
            theirs, their_sink, "c", PollingEndpointConsumerSeekIn(after=datetime.now(UTC))
        ),
        lambda: scoped.destination.get(theirs, their_sink),
        lambda: scoped.destination.list(theirs),
    ):
        with pytest.raises(HttpError) as refused:
            call()
        assert refused.value.status_code == 403
    with pytest.raises(HttpError) as missing:
        scoped.message.poller.poll(mine, their_sink)
    assert missing.value.status_code == 404
