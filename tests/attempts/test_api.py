"""Attempts and per-endpoint delivery status, in memory.

No worker runs here, so nothing is ever attempted: these tests cover who a message is
owed to, empty attempt lists, lookups and resending. Real attempts are covered against a
running worker in tests/test_svix_client.py.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import Json, MakeApp, MakeEndpoint, SendMessage, expect

PENDING = 1


def app_url(app_id: str) -> str:
    return f"/api/v1/app/{app_id}"


def owed(client: TestClient, app_id: str, msg_id: str) -> dict[str, Json]:
    """The message's destinations, by endpoint id."""
    page = expect(client.get(f"{app_url(app_id)}/msg/{msg_id}/endpoint"), 200)
    return {destination["id"]: destination for destination in page["data"]}


@pytest.fixture
def fleet(make_endpoint: MakeEndpoint) -> dict[str, str]:
    """Endpoints with different filters, by role."""
    return {
        "all": make_endpoint()["id"],
        "empty-filter": make_endpoint(eventTypes=[])["id"],
        "only-a": make_endpoint(eventTypes=["a"])["id"],
        "only-b": make_endpoint(eventTypes=["b", "c"])["id"],
        "disabled": make_endpoint(disabled=True)["id"],
        "channel-eu": make_endpoint(channels=["eu"])["id"],
    }


def test_destinations_respect_event_type_filters(
    client: TestClient, app_id: str, fleet: dict[str, str], send: SendMessage
) -> None:
    for event_type, expected in (
        ("a", {"all", "empty-filter", "only-a"}),
        ("b", {"all", "empty-filter", "only-b"}),
        ("z", {"all", "empty-filter"}),
    ):
        message = send(event_type)
        assert set(owed(client, app_id, message["id"])) == {fleet[role] for role in expected}, event_type


def test_destinations_respect_channels(
    client: TestClient, app_id: str, fleet: dict[str, str], send: SendMessage
) -> None:
    message = send("z", channels=["eu", "us"])

    assert set(owed(client, app_id, message["id"])) == {fleet["all"], fleet["empty-filter"], fleet["channel-eu"]}


def test_destinations_are_pending(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, send: SendMessage
) -> None:
    endpoint = make_endpoint(uid="dest", description="d", eventTypes=["e"])

    message = send("e")

    destination = owed(client, app_id, message["id"])[endpoint["id"]]
    assert destination["status"] == PENDING
    assert destination["statusText"] == "pending"
    assert datetime.fromisoformat(destination["nextAttempt"]) >= datetime.fromisoformat(message["timestamp"])
    for field in ("uid", "url", "description", "eventTypes", "channels", "disabled", "createdAt", "updatedAt"):
        assert destination[field] == endpoint[field], field


def test_endpoint_added_later_is_not_owed_an_earlier_message(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, send: SendMessage
) -> None:
    message = send()

    make_endpoint()

    assert owed(client, app_id, message["id"]) == {}


def test_deleted_endpoint_leaves_the_destinations(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, send: SendMessage
) -> None:
    kept, deleted = make_endpoint()["id"], make_endpoint()["id"]
    message = send()

    assert client.delete(f"{app_url(app_id)}/endpoint/{deleted}").status_code == 204

    assert set(owed(client, app_id, message["id"])) == {kept}


def test_destinations_of_an_unknown_message_are_404(client: TestClient, app_id: str) -> None:
    response = client.get(f"{app_url(app_id)}/msg/msg_2abcdefghijklmnopqrstu/endpoint")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_attempt_lists_start_empty(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, send: SendMessage
) -> None:
    endpoint = make_endpoint()
    message = send()

    for url in (
        f"{app_url(app_id)}/attempt/msg/{message['id']}",
        f"{app_url(app_id)}/attempt/endpoint/{endpoint['id']}",
    ):
        page = expect(client.get(url), 200)
        assert page["data"] == []
        assert page["done"] is True


def test_attempt_lists_accept_the_svix_filters(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, send: SendMessage
) -> None:
    endpoint = make_endpoint()
    message = send()
    params = {"status": 0, "before": message["timestamp"], "after": message["timestamp"], "limit": 10}

    by_msg = client.get(
        f"{app_url(app_id)}/attempt/msg/{message['id']}", params=params | {"endpoint_id": endpoint["id"]}
    )
    by_endpoint = client.get(f"{app_url(app_id)}/attempt/endpoint/{endpoint['id']}", params=params)

    assert (by_msg.status_code, by_endpoint.status_code) == (200, 200)
    assert by_msg.json()["data"] == by_endpoint.json()["data"] == []


def test_attempt_lists_reject_an_unknown_status(client: TestClient, app_id: str, send: SendMessage) -> None:
    message = send()

    response = client.get(f"{app_url(app_id)}/attempt/msg/{message['id']}", params={"status": 9})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "status"]


def test_attempt_lists_of_unknown_things_are_404(client: TestClient, app_id: str, make_app: MakeApp) -> None:
    for url in (
        f"{app_url(app_id)}/attempt/msg/msg_2abcdefghijklmnopqrstu",
        f"{app_url(app_id)}/attempt/endpoint/ep_2abcdefghijklmnopqrstu",
        f"{app_url('no-such-app')}/attempt/msg/msg_2abcdefghijklmnopqrstu",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json()["code"] == "not_found"


def test_get_unknown_attempt_is_404(client: TestClient, app_id: str, send: SendMessage) -> None:
    message = send()

    response = client.get(f"{app_url(app_id)}/msg/{message['id']}/attempt/atmpt_2abcdefghijklmnopqrstu")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_resend_is_accepted_and_pending(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, send: SendMessage
) -> None:
    endpoint = make_endpoint()
    message = send()

    response = client.post(f"{app_url(app_id)}/msg/{message['id']}/endpoint/{endpoint['id']}/resend")

    assert response.status_code == 202
    destinations = owed(client, app_id, message["id"])
    assert list(destinations) == [endpoint["id"]]
    assert (destinations[endpoint["id"]]["status"], destinations[endpoint["id"]]["statusText"]) == (PENDING, "pending")


def test_resend_answers_with_an_empty_json_object(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, send: SendMessage
) -> None:
    """Svix answers a resend with ``{}``; its clients parse the body as an (empty) object."""
    endpoint = make_endpoint()
    message = send()

    response = client.post(f"{app_url(app_id)}/msg/{message['id']}/endpoint/{endpoint['id']}/resend")

    assert response.status_code == 202
    assert response.json() == {}


def test_resend_to_an_endpoint_the_message_did_not_match(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, send: SendMessage
) -> None:
    filtered = make_endpoint(eventTypes=["a"])
    message = send("b")
    assert owed(client, app_id, message["id"]) == {}

    response = client.post(f"{app_url(app_id)}/msg/{message['id']}/endpoint/{filtered['id']}/resend")

    assert response.status_code == 202
    assert owed(client, app_id, message["id"])[filtered["id"]]["status"] == PENDING


def test_resend_twice_keeps_one_destination(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, send: SendMessage
) -> None:
    endpoint = make_endpoint()
    message = send()
    url = f"{app_url(app_id)}/msg/{message['id']}/endpoint/{endpoint['id']}/resend"

    assert [client.post(url).status_code for _ in range(2)] == [202, 202]

    assert list(owed(client, app_id, message["id"])) == [endpoint["id"]]


def test_resend_of_unknown_things_is_404(
    client: TestClient, app_id: str, make_app: MakeApp, make_endpoint: MakeEndpoint, send: SendMessage
) -> None:
    endpoint = make_endpoint()
    message = send()
    foreign_endpoint = make_endpoint(app=make_app()["id"])

    for msg_id, endpoint_id in (
        ("msg_2abcdefghijklmnopqrstu", endpoint["id"]),
        (message["id"], "ep_2abcdefghijklmnopqrstu"),
        (message["id"], foreign_endpoint["id"]),
    ):
        response = client.post(f"{app_url(app_id)}/msg/{msg_id}/endpoint/{endpoint_id}/resend")
        assert response.status_code == 404, (msg_id, endpoint_id)
        assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00Z", "1969-12-31T23:00:00Z", "9999-12-31T23:59:59Z"])
def test_lists_bounded_by_any_time_answer(
    client: TestClient, app_id: str, make_endpoint: MakeEndpoint, send: SendMessage, at: str
) -> None:
    """Every list that takes before/after answers for times an id cannot hold (found by the fuzzer:
    a time before 1970 hung the API process and grew its memory without bound)."""
    endpoint = make_endpoint()
    message = send()
    for url in (
        f"{app_url(app_id)}/msg",
        f"{app_url(app_id)}/attempt/msg/{message['id']}",
        f"{app_url(app_id)}/attempt/endpoint/{endpoint['id']}",
        f"{app_url(app_id)}/endpoint/{endpoint['id']}/msg",
    ):
        for bound in ("before", "after"):
            expect(client.get(url, params={bound: at}), 200)
