"""ed25519 signatures (Standard Webhooks ``v1a``): an endpoint given a ``whsk_`` key signs with it,
shows only its ``whpk_`` public key, and signs with both keys through a rotation's grace period.

Real deliveries (in-process claim, send, record) to a receiver on loopback, verified by a
verifier written here from the specification's asymmetric section with cryptography's Ed25519.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from sqlalchemy import select
from standardwebhooks import Webhook

from hookpost.app import create_app
from hookpost.delivery.context import DeliveryContext
from hookpost.settings import Settings
from hookpost.storage.models import Delivery
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.console.support import csrf_token_of, sign_in
from tests.support.databases import upgrade_to_head
from tests.support.delivery import deliver, delivery_context
from tests.support.receiver import ReceivedRequest, Receiver


def new_whsk() -> str:
    """A key pair in Svix's ``whsk_`` form: base64 of the 32-byte seed, then the public key."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "whsk_" + base64.b64encode(key.private_bytes_raw() + public).decode()


def whpk_of(whsk: str) -> str:
    return "whpk_" + base64.b64encode(base64.b64decode(whsk.removeprefix("whsk_"))[32:]).decode()


def v1a_verifies(whpk: str, request: ReceivedRequest) -> bool:
    """The specification's check: some ``v1a,`` signature in webhook-signature is an ed25519
    signature by the whpk_ key of ``{webhook-id}.{webhook-timestamp}.{body}``."""
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(whpk.removeprefix("whpk_")))
    content = b".".join(
        [request.headers["webhook-id"].encode(), request.headers["webhook-timestamp"].encode(), request.body]
    )
    for signature in request.headers["webhook-signature"].split():
        version, _, encoded = signature.partition(",")
        if version != "v1a":
            continue
        try:
            public.verify(base64.b64decode(encoded), content)
        except InvalidSignature:
            continue
        return True
    return False


def versions(request: ReceivedRequest) -> list[str]:
    return sorted(signature.partition(",")[0] for signature in request.headers["webhook-signature"].split())


@pytest.fixture
async def context(settings: Settings) -> AsyncIterator[DeliveryContext]:
    async with delivery_context(settings) as context:
        yield context


async def _send_and_receive(
    client: TestClient, context: DeliveryContext, receiver: Receiver, app_id: str, endpoint_id: str, path: str
) -> ReceivedRequest:
    msg_id = client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "e", "payload": {"n": 1}}).json()["id"]
    async with context.sessionmaker() as session:
        delivery_id = await session.scalar(
            select(Delivery.id).where(Delivery.msg_id == msg_id, Delivery.endpoint_id == endpoint_id)
        )
    assert delivery_id is not None
    assert await deliver(context, delivery_id) is not None
    [request] = [r for r in receiver.received(path) if r.headers["webhook-id"] == msg_id]
    return request


async def test_a_whsk_endpoint_signs_v1a_and_shows_only_its_public_key(
    client: TestClient, context: DeliveryContext, receiver: Receiver
) -> None:
    whsk = new_whsk()
    app_id = client.post("/api/v1/app", json={"name": "ed"}).json()["id"]
    endpoint = client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": receiver.url + "/ed", "secret": whsk})
    assert endpoint.status_code == 201, endpoint.text
    endpoint_id = endpoint.json()["id"]

    shown = client.get(f"/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret").json()["key"]
    assert shown == whpk_of(whsk)
    assert whsk.removeprefix("whsk_") not in endpoint.text

    request = await _send_and_receive(client, context, receiver, app_id, endpoint_id, "/ed")
    assert versions(request) == ["v1a"]
    assert v1a_verifies(shown, request)
    assert request.headers["svix-signature"] == request.headers["webhook-signature"]
    assert not v1a_verifies(whpk_of(new_whsk()), request)


async def test_rotating_between_whsec_and_whsk_signs_with_both_during_the_grace_period(
    client: TestClient, context: DeliveryContext, receiver: Receiver
) -> None:
    app_id = client.post("/api/v1/app", json={"name": "rotate"}).json()["id"]
    endpoint_id = client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": receiver.url + "/r"}).json()["id"]
    secret_url = f"/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret"
    whsec = client.get(secret_url).json()["key"]

    whsk = new_whsk()
    rotated = client.post(secret_url + "/rotate", json={"key": whsk, "gracePeriodSeconds": 3600})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["key"] == whpk_of(whsk)
    request = await _send_and_receive(client, context, receiver, app_id, endpoint_id, "/r")
    assert versions(request) == ["v1", "v1a"]
    assert v1a_verifies(whpk_of(whsk), request)
    Webhook(whsec).verify(request.body, request.headers)  # the old HMAC secret still verifies

    new_whsec = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    client.post(secret_url + "/rotate", json={"key": new_whsec, "gracePeriodSeconds": 3600})
    assert client.get(secret_url).json()["key"] == new_whsec
    request = await _send_and_receive(client, context, receiver, app_id, endpoint_id, "/r")
    assert versions(request) == ["v1", "v1a"]
    assert v1a_verifies(whpk_of(whsk), request)
    Webhook(new_whsec).verify(request.body, request.headers)

    client.post(secret_url + "/rotate", json={"key": new_whsk(), "gracePeriodSeconds": 0})
    request = await _send_and_receive(client, context, receiver, app_id, endpoint_id, "/r")
    assert versions(request) == ["v1a"]  # no grace: the HMAC secret signs no more


def test_a_malformed_whsk_key_is_refused_with_the_reason(client: TestClient) -> None:
    app_id = client.post("/api/v1/app", json={"name": "bad"}).json()["id"]
    whsk = new_whsk()
    raw = base64.b64decode(whsk.removeprefix("whsk_"))
    mismatched = "whsk_" + base64.b64encode(raw[:32] + bytes(32)).decode()
    for key, reason in ((mismatched, "public key"), ("whsk_" + base64.b64encode(bytes(40)).decode(), "40")):
        answer = client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": "http://127.0.0.1:9/x", "secret": key})
        assert answer.status_code == 422, answer.text
        assert reason in answer.text
        assert key not in answer.text


async def test_an_operational_webhook_endpoint_signs_v1a_with_its_whsk(
    client: TestClient, context: DeliveryContext, receiver: Receiver
) -> None:
    whsk = new_whsk()
    ops = client.post("/api/v1/operational-webhook/endpoint", json={"url": receiver.url + "/ops", "secret": whsk})
    assert ops.status_code == 201, ops.text
    ops_id = ops.json()["id"]
    assert client.get(f"/api/v1/operational-webhook/endpoint/{ops_id}/secret").json()["key"] == whpk_of(whsk)

    app_id = client.post("/api/v1/app", json={"name": "watched"}).json()["id"]
    client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": "http://127.0.0.1:9/x"})  # endpoint.created
    async with context.sessionmaker() as session:
        delivery_id = await session.scalar(select(Delivery.id).where(Delivery.endpoint_id == ops_id))
    assert delivery_id is not None
    assert await deliver(context, delivery_id) is not None
    [request] = receiver.received("/ops")
    assert versions(request) == ["v1a"]
    assert v1a_verifies(whpk_of(whsk), request)


def test_the_console_shows_the_public_key_not_the_private_one(client: TestClient) -> None:
    whsk = new_whsk()
    app_id = client.post("/api/v1/app", json={"name": "page"}).json()["id"]
    endpoint = client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": "http://127.0.0.1:9/x", "secret": whsk})
    page = f"/console/app/{app_id}/endpoint/{endpoint.json()['id']}"
    assert sign_in(client).status_code == 303
    shown = client.post(page + "/secret", data={"csrf_token": csrf_token_of(client.get(page).text)}).text
    assert whpk_of(whsk) in shown
    assert "Public key" in shown
    assert whsk.removeprefix("whsk_") not in shown


def test_with_ed25519_as_the_default_generated_secrets_are_key_pairs(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, default_signature_type="ed25519")
    upgrade_to_head(settings)
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        app_id = client.post("/api/v1/app", json={"name": "default"}).json()["id"]
        endpoint_id = client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": "http://127.0.0.1:9/x"}).json()["id"]
        secret_url = f"/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret"
        first = client.get(secret_url).json()["key"]
        rotated = client.post(secret_url + "/rotate", json={}).json()["key"]
    for shown in (first, rotated):
        assert shown.startswith("whpk_")
        assert len(base64.b64decode(shown.removeprefix("whpk_"))) == 32
    assert first != rotated
