"""The destination resource through the API: each type's configuration checked, credentials
encrypted at rest and never shown back, the types not delivered to saying so, tenants apart."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from hookpost.settings import Settings
from tests.api.helpers import Json, MakeApp, declare_event_types, expect

PORTAL = "/api/v1/auth/app-portal-access"

RABBIT = {"uri": "amqp://hook:rabbit-pass-1@127.0.0.1:5672/%2F", "routingKey": "events", "mandatory": True}
POSTGRES = {"url": "postgres://hook@127.0.0.1:5432/sink", "password": "pg-pass-2", "tableName": "public.events"}
SQS = {
    "queueUrl": "http://127.0.0.1:4566/000000000000/events",
    "region": "us-east-1",
    "accessKeyId": "AKIATEST",
    "secretAccessKey": "sqs-secret-3",
    "endpointUrl": "http://127.0.0.1:4566",
}
S3 = {"bucket": "events", "region": "eu-west-1", "accessKeyId": "AKIATEST", "secretAccessKey": "s3-secret-4"}
FIFO = {"url": "https://127.0.0.1:9/fifo", "headers": {"Authorization": "Bearer fifo-5", "X-Team": "a"}}
SECRETS = ("rabbit-pass-1", "pg-pass-2", "sqs-secret-3", "s3-secret-4", "fifo-5")


def url(app_id: str, *rest: str) -> str:
    return "/".join([f"/api/v1/app/{app_id}/destination", *rest])


def create(client: TestClient, app_id: str, type_: str, config: Json | None = None, **fields: Any) -> Json:
    body: Json = {"type": type_, **fields}
    if config is not None:
        body["config"] = config
    return expect(client.post(url(app_id), json=body), 201)


def test_a_polling_endpoint_is_created_listed_read_patched_and_deleted(client: TestClient, app_id: str) -> None:
    declare_event_types(client, "user.created")
    made = create(client, app_id, "pollingEndpoint", uid="poll-1", eventTypes=["user.created"])
    assert made["id"].startswith("dest_")
    assert (made["type"], made["status"], made["failureReason"]) == ("pollingEndpoint", "enabled", None)
    assert (made["batchSize"], made["maxWaitSecs"], made["config"]) == (100, 1, {})
    assert made["currentIterator"]

    assert expect(client.get(url(app_id, "poll-1")), 200)["id"] == made["id"]
    listed = expect(client.get(url(app_id)), 200)
    assert [item["id"] for item in listed["data"]] == [made["id"]]
    assert listed["done"]

    patched = expect(
        client.patch(
            url(app_id, made["id"]), json={"type": "pollingEndpoint", "channels": ["eu"], "status": "disabled"}
        ),
        200,
    )
    assert (patched["channels"], patched["eventTypes"], patched["status"]) == (["eu"], ["user.created"], "disabled")

    assert client.delete(url(app_id, made["id"])).status_code == 204
    assert client.get(url(app_id, made["id"])).status_code == 404


def test_upsert_creates_with_the_path_as_uid_then_replaces(client: TestClient, app_id: str) -> None:
    first = client.put(url(app_id, "orders"), json={"type": "pollingEndpoint", "channels": ["a"]})
    assert first.status_code == 201, first.text
    assert first.json()["uid"] == "orders"
    again = expect(client.put(url(app_id, "orders"), json={"type": "pollingEndpoint"}), 200)
    assert (again["id"], again["channels"]) == (first.json()["id"], None)
    assert client.put(url(app_id, "dest_0000000000000000000000"), json={"type": "pollingEndpoint"}).status_code == 404


@pytest.mark.parametrize(
    ("type_", "config"),
    [("rabbitMq", RABBIT), ("postgres", POSTGRES), ("sqs", SQS), ("amazonS3", S3)],
)
def test_queues_and_stores_are_delivered_to_and_their_secrets_stay_hidden(
    client: TestClient, app_id: str, settings: Settings, type_: str, config: Json
) -> None:
    made = create(client, app_id, type_, config)
    assert (made["status"], made["failureReason"]) == ("enabled", None)
    shown = str(made) + client.get(url(app_id, made["id"])).text + client.get(url(app_id)).text
    assert not [secret for secret in SECRETS if secret in shown]
    stored = asyncio.run(_raw_row(settings, made["id"]))
    assert not [secret for secret in SECRETS if secret in stored]
    disabled = expect(client.patch(url(app_id, made["id"]), json={"type": type_, "status": "disabled"}), 200)
    assert (disabled["status"], disabled["failureReason"]) == ("disabled", None)


def test_a_fifo_endpoint_is_delivered_to_and_its_secrets_stay_hidden(
    client: TestClient, app_id: str, settings: Settings
) -> None:
    made = create(client, app_id, "fifoEndpoint", FIFO)
    assert (made["status"], made["failureReason"]) == ("enabled", None)
    shown = str(made) + client.get(url(app_id, made["id"])).text + client.get(url(app_id)).text
    assert "fifo-5" not in shown
    assert "fifo-5" not in asyncio.run(_raw_row(settings, made["id"]))


async def _raw_row(settings: Settings, destination_id: str) -> str:
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(text("SELECT * FROM destination WHERE id = :id"), {"id": destination_id})
            ).one()
            return repr(tuple(row))
    finally:
        await engine.dispose()


def test_shown_configurations(client: TestClient, app_id: str) -> None:
    rabbit = create(client, app_id, "rabbitMq", RABBIT)["config"]
    assert rabbit == {"uri": "amqp://hook:***@127.0.0.1:5672/%2F", "routingKey": "events", "mandatory": True}
    postgres = create(client, app_id, "postgres", POSTGRES)["config"]
    assert postgres == {"url": "postgres://hook@127.0.0.1:5432/sink", "tableName": "public.events"}
    sqs = create(client, app_id, "sqs", SQS)["config"]
    # URLs normalised as an endpoint's are (a path of / at least).
    assert sqs == {
        **{key: value for key, value in SQS.items() if key != "secretAccessKey"},
        "endpointUrl": "http://127.0.0.1:4566/",
    }
    fifo = create(client, app_id, "fifoEndpoint", FIFO)["config"]
    assert fifo == {"url": FIFO["url"], "headers": {"headers": {"X-Team": "a"}, "sensitive": ["Authorization"]}}


def test_patching_a_configuration_merges_and_checks_the_whole(client: TestClient, app_id: str) -> None:
    made = create(client, app_id, "rabbitMq", RABBIT)
    patched = expect(
        client.patch(url(app_id, made["id"]), json={"type": "rabbitMq", "config": {"routingKey": "other"}}), 200
    )
    assert patched["config"] == {**made["config"], "routingKey": "other"}
    cleared = client.patch(url(app_id, made["id"]), json={"type": "rabbitMq", "config": {"routingKey": None}})
    assert cleared.status_code == 422, cleared.text
    changed_type = client.patch(url(app_id, made["id"]), json={"type": "sqs", "config": {}})
    assert changed_type.status_code == 422
    assert "cannot change" in changed_type.text


def test_an_unsupported_type_is_refused_naming_the_supported_ones(client: TestClient, app_id: str) -> None:
    response = client.post(url(app_id), json={"type": "sns", "config": {"topicArn": "x"}})
    assert response.status_code == 422
    for supported in ("pollingEndpoint", "fifoEndpoint", "rabbitMq", "postgres", "sqs", "amazonS3"):
        assert supported in response.text


@pytest.mark.parametrize(
    ("type_", "config", "field"),
    [
        ("rabbitMq", {**RABBIT, "uri": "amqp://u:p@10.1.2.3/%2F"}, "uri"),
        ("postgres", {**POSTGRES, "url": "postgresql://u@[fd00::1]:5432/x"}, "url"),
        ("sqs", {**SQS, "endpointUrl": "http://169.254.169.254/"}, "endpointUrl"),
        ("amazonS3", {**S3, "endpointUrl": "http://192.168.1.1:9000"}, "endpointUrl"),
        ("fifoEndpoint", {**FIFO, "url": "https://10.0.0.8/hook"}, "url"),
    ],
)
def test_a_private_address_is_refused_as_for_endpoints(
    client: TestClient, app_id: str, type_: str, config: Json, field: str
) -> None:
    response = client.post(url(app_id), json={"type": type_, "config": config})
    assert response.status_code == 422, response.text
    assert "not a public address" in response.text
    assert response.json()["detail"][0]["loc"][-1] in (field, "endpoint_url")


@pytest.mark.parametrize(
    ("type_", "config"),
    [
        ("rabbitMq", {"uri": "http://x/", "routingKey": "k"}),
        ("postgres", {**POSTGRES, "tableName": 'evil"; drop'}),
        ("sqs", {**SQS, "secretAccessKey": None}),
        ("amazonS3", {"bucket": "events", "region": "eu-west-1"}),
        ("pollingEndpoint", {"url": "https://example.com/"}),
        ("fifoEndpoint", {"url": "ftp://example.com/"}),
        ("rabbitMq", {**RABBIT, "unknownField": 1}),
    ],
)
def test_a_bad_configuration_is_a_422(client: TestClient, app_id: str, type_: str, config: Json) -> None:
    response = client.post(url(app_id), json={"type": type_, "config": config})
    assert response.status_code == 422, response.text


def test_rotating_the_secret_is_for_a_fifo_endpoint(client: TestClient, app_id: str) -> None:
    key = "whsec_" + "A" * 32
    fifo = create(client, app_id, "fifoEndpoint", {**FIFO, "key": key})
    rotated = expect(client.post(url(app_id, fifo["id"], "secret/rotate"), json={}), 200)["key"]
    assert rotated.startswith("whsec_")
    assert rotated != key
    chosen = "whsec_" + "B" * 32
    assert expect(client.post(url(app_id, fifo["id"], "secret/rotate"), json={"key": chosen}), 200)["key"] == chosen
    poller = create(client, app_id, "pollingEndpoint")
    refused = client.post(url(app_id, poller["id"], "secret/rotate"), json={})
    assert refused.status_code == 409
    assert "only a fifoEndpoint" in refused.text


def test_uids_are_unique_per_application(client: TestClient, app_id: str, make_app: MakeApp) -> None:
    create(client, app_id, "pollingEndpoint", uid="same")
    assert client.post(url(app_id), json={"type": "pollingEndpoint", "uid": "same"}).status_code == 409
    create(client, make_app()["id"], "pollingEndpoint", uid="same")


def test_a_scoped_token_reaches_its_own_applications_destinations_only(
    client: TestClient, app_id: str, make_app: MakeApp
) -> None:
    other = make_app()["id"]
    theirs = create(client, other, "pollingEndpoint", uid="theirs")
    token = expect(client.post(f"{PORTAL}/{app_id}", json={}), 200)["token"]
    as_token = {"authorization": f"Bearer {token}"}

    mine = client.post(url(app_id), json={"type": "pollingEndpoint"}, headers=as_token)
    assert mine.status_code == 201, mine.text
    assert client.get(url(app_id), headers=as_token).status_code == 200
    for method, path in [
        ("GET", url(other)),
        ("GET", url(other, theirs["id"])),
        ("GET", url(other, theirs["id"], "attempt")),
        ("PATCH", url(other, theirs["id"])),
        ("DELETE", url(other, theirs["id"])),
        ("POST", url(other)),
    ]:
        response = client.request(method, path, headers=as_token, json={"type": "pollingEndpoint"})
        assert response.status_code == 403, (method, path, response.text)
    # Another application's destination through one's own application: not there.
    assert client.get(url(app_id, theirs["id"]), headers=as_token).status_code == 404
    assert client.get(url(other, theirs["id"])).status_code == 200  # still there


def test_a_read_only_token_reads_but_cannot_change(client: TestClient, app_id: str) -> None:
    made = create(client, app_id, "fifoEndpoint", FIFO)
    token = expect(client.post(f"{PORTAL}/{app_id}", json={"readOnly": True}), 200)["token"]
    as_token = {"authorization": f"Bearer {token}"}
    assert client.get(url(app_id, made["id"]), headers=as_token).status_code == 200
    assert expect(client.get(url(app_id, made["id"], "attempt"), headers=as_token), 200)["data"] == []
    assert client.post(url(app_id, made["id"], "secret/rotate"), json={}, headers=as_token).status_code == 403
    assert client.delete(url(app_id, made["id"]), headers=as_token).status_code == 403
