"""Inputs the Svix API defines, each honoured or refused with a 422 that says so (never ignored)."""

from __future__ import annotations

import asyncio
import base64
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hookpost.delivery.maintenance import purge_expired_content
from hookpost.settings import Settings
from hookpost.storage.database import create_engine, create_sessionmaker
from hookpost.storage.models import Message
from tests.api.helpers import MakeApp, MakeEndpoint, SendMessage, expect, unique

APPS = "/api/v1/app"


def messages(app_id: str) -> str:
    return f"{APPS}/{app_id}/msg"


def listed(client: TestClient, url: str, **params: object) -> list[str]:
    return [item["id"] for item in expect(client.get(url, params=params), 200)["data"]]


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


# --- endpoint secrets -------------------------------------------------------------------------


def test_a_bare_base64_secret_is_taken_with_its_prefix(client: TestClient, app_id: str) -> None:
    key = base64.b64encode(secrets.token_bytes(24)).decode()

    endpoint = expect(
        client.post(f"{APPS}/{app_id}/endpoint", json={"url": "https://127.0.0.1:9/a", "secret": key}), 201
    )

    stored = expect(client.get(f"{APPS}/{app_id}/endpoint/{endpoint['id']}/secret"), 200)
    assert stored["key"] == "whsec_" + key


def test_a_secret_that_is_not_base64_is_still_refused(client: TestClient, app_id: str) -> None:
    response = client.post(f"{APPS}/{app_id}/endpoint", json={"url": "https://127.0.0.1:9/a", "secret": "short!"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "secret"]


# --- pagination -----------------------------------------------------------------------------


def test_walking_back_reports_done_at_the_first_page(client: TestClient, make_app: MakeApp) -> None:
    made = sorted(make_app()["id"] for _ in range(5))
    forward = [expect(client.get(APPS, params={"limit": 2}), 200)]
    while not forward[-1]["done"]:
        forward.append(expect(client.get(APPS, params={"limit": 2, "iterator": forward[-1]["iterator"]}), 200))
    assert [app["id"] for page in forward for app in page["data"]] == made

    back = expect(client.get(APPS, params={"limit": 2, "iterator": forward[-1]["prevIterator"]}), 200)
    assert [app["id"] for app in back["data"]] == made[2:4]
    assert back["done"] is False, "a page before it is left"
    first = expect(client.get(APPS, params={"limit": 2, "iterator": back["prevIterator"]}), 200)
    assert [app["id"] for app in first["data"]] == made[:2]
    assert first["done"] is True, "nothing before the first page"


# --- message list filters -------------------------------------------------------------------


def test_message_list_filters_by_channel_and_tag(client: TestClient, app_id: str, send: SendMessage) -> None:
    eu = send(channels=["eu", "all"], tags=["vip"])["id"]
    us = send(channels=["us", "all"], tags=["vip_2"])["id"]
    untagged = send()["id"]

    url = messages(app_id)
    assert listed(client, url, channel="eu") == [eu]
    assert listed(client, url, channel="all") == [us, eu]
    assert listed(client, url, tag="vip") == [eu], "a tag is matched whole: vip_2 is not vip"
    assert listed(client, url, tag="vip_2") == [us]
    assert listed(client, url, channel="none-has-it") == []
    assert listed(client, url, channel="all", tag="vip") == [eu]
    assert untagged in listed(client, url)


# --- deliverAt ------------------------------------------------------------------------------


def test_deliver_at_schedules_the_deliveries(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, send: SendMessage
) -> None:
    make_endpoint()
    when = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)

    message = send(deliverAt=iso(when))

    assert message["deliverAt"] == iso(when)
    assert expect(client.get(f"{messages(app_id)}/{message['id']}"), 200)["deliverAt"] == iso(when)
    [listed_message] = expect(client.get(messages(app_id)), 200)["data"]
    assert listed_message["deliverAt"] == iso(when)
    [destination] = expect(client.get(f"{messages(app_id)}/{message['id']}/endpoint"), 200)["data"]
    assert destination["nextAttempt"] == iso(when)
    assert destination["statusText"] == "pending"


def test_deliver_at_more_than_a_day_ahead_is_refused(client: TestClient, app_id: str) -> None:
    when = datetime.now(UTC) + timedelta(days=2)

    response = client.post(messages(app_id), json={"eventType": "a", "payload": {}, "deliverAt": iso(when)})

    assert response.status_code == 422
    assert "deliverAt" in response.json()["detail"][0]["msg"]


def test_a_message_without_deliver_at_says_so(send: SendMessage) -> None:
    assert send()["deliverAt"] is None


# --- payload retention ----------------------------------------------------------------------


def _age_everything(settings: Settings, by: timedelta) -> None:
    """As if ``by`` had passed since every message was stored."""

    async def age() -> None:
        engine = create_engine(settings)
        async with create_sessionmaker(engine)() as session:
            # Row by row: SQLite keeps times as text, so no date arithmetic in SQL.
            for message in await session.scalars(select(Message)):
                message.created_at -= by
                if message.payload_expires_at is not None:
                    message.payload_expires_at -= by
            await session.commit()
        await engine.dispose()

    asyncio.run(age())


def _purge(settings: Settings) -> None:
    async def purge() -> None:
        engine = create_engine(settings)
        await purge_expired_content(create_sessionmaker(engine), settings)
        await engine.dispose()

    asyncio.run(purge())


def test_payload_retention_overrides_the_default(
    client: TestClient, settings: Settings, app_id: str, send: SendMessage
) -> None:
    hour = send(payload={"keep": "1 h"}, payloadRetentionHours=1)["id"]
    default = send(payload={"keep": "default"})["id"]
    sixty_days = send(payload={"keep": "60 d"}, payloadRetentionPeriod=60)["id"]

    def payload(msg_id: str) -> object:
        return expect(client.get(f"{messages(app_id)}/{msg_id}"), 200)["payload"]

    _age_everything(settings, timedelta(hours=2))
    _purge(settings)
    assert (payload(hour), payload(default), payload(sixty_days)) == ({}, {"keep": "default"}, {"keep": "60 d"})

    _age_everything(settings, timedelta(days=settings.retention_days))
    _purge(settings)
    assert (payload(default), payload(sixty_days)) == ({}, {"keep": "60 d"})


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"payloadRetentionPeriod": 5, "payloadRetentionHours": 1}, "mutually exclusive"),
        ({"payloadRetentionPeriod": 91}, "less than or equal to 90"),
        ({"payloadRetentionHours": 0}, "greater than or equal to 1"),
    ],
)
def test_payload_retention_out_of_range_is_refused(
    client: TestClient, app_id: str, fields: dict[str, int], says: str
) -> None:
    response = client.post(messages(app_id), json={"eventType": "a", "payload": {}, **fields})

    assert response.status_code == 422
    assert says in response.json()["detail"][0]["msg"]


# --- refused: what Hookpost does not implement ------------------------------------------------


def test_transformations_params_is_refused_as_not_supported(client: TestClient, app_id: str) -> None:
    body = {"eventType": "a", "payload": {}, "transformationsParams": {"rawPayload": "x"}}

    response = client.post(messages(app_id), json=body)

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "transformationsParams"]
    assert "not supported" in error["msg"]


def test_channels_on_an_operational_endpoint_are_refused_as_not_supported(client: TestClient) -> None:
    ops = "/api/v1/operational-webhook/endpoint"
    body = {"url": "https://127.0.0.1:9/ops", "channels": ["eu"]}

    for response in (client.post(ops, json=body), client.put(f"{ops}/{unique('ops')}", json=body)):
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert (error["loc"], "not supported" in error["msg"]) == (["body", "channels"], True)
    assert expect(client.get(ops), 200)["data"] == [], "nothing made"


# --- application list filters ---------------------------------------------------------------


def test_application_list_exclusions(
    client: TestClient, app_id: str, make_app: MakeApp, make_endpoint: MakeEndpoint
) -> None:
    empty = app_id  # make_endpoint's default application, with no endpoint of its own
    healthy = make_app()["id"]
    make_endpoint(app=healthy)
    with_disabled = make_app()["id"]
    make_endpoint(app=with_disabled, disabled=True)
    on_play = make_app()["id"]
    make_endpoint(app=on_play, url="https://play.svix.com/in/e_abc/")

    def apps(**params: object) -> set[str]:
        return set(listed(client, APPS, **params))

    everything = {empty, healthy, with_disabled, on_play}
    assert apps() == everything
    assert apps(exclude_apps_with_no_endpoints=True) == everything - {empty}
    assert apps(exclude_apps_with_disabled_endpoints=True) == everything - {with_disabled}
    assert apps(exclude_apps_with_svix_play_endpoints=True) == everything - {on_play}
