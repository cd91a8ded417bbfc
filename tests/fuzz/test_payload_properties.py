"""Properties of the payload path, for what a schema-driven fuzzer does not generate: lone
surrogates, NUL, deep nesting, huge and non-finite numbers.

Whatever the payload, the API answers 202 or 422, never a 500; what it accepts it gives
back exactly as sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookpost.app import create_app
from hookpost.kit.validation import MAX_PAYLOAD_DEPTH, payload_json
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import upgrade_to_head

surrogates = st.integers(0xD800, 0xDFFF).map(chr)
hostile_text = st.text(st.one_of(st.characters(), surrogates, st.just("\x00"), st.just("\u2028")), max_size=12)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([2**64, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, hostile_text)
values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(hostile_text, children, max_size=4)),
    max_leaves=20,
)


def _nested(depth: int) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    for _ in range(depth - 1):
        payload = {"d": [payload]} if depth % 2 else {"d": payload}
    return payload


payloads = st.one_of(
    st.dictionaries(hostile_text, values, max_size=5),
    st.integers(1, 3 * MAX_PAYLOAD_DEPTH).map(_nested),
)


def _contains_non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_contains_non_finite(item) for item in value.values())
    if isinstance(value, list):
        return any(_contains_non_finite(item) for item in value)
    return False


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app_settings = make_settings(tmp_path_factory.mktemp("payload-properties"))
    upgrade_to_head(app_settings)
    with TestClient(create_app(app_settings), headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def app_id(client: TestClient) -> str:
    response = client.post("/api/v1/app", json={"name": "Properties"})
    assert response.status_code == 201
    return str(response.json()["id"])


@given(payload=payloads)
@settings(max_examples=200, deadline=None, database=None)
def test_payload_json_accepts_or_refuses_with_a_value_error(payload: dict[str, Any]) -> None:
    try:
        text = payload_json(payload)
    except ValueError:
        return
    assert json.loads(text) == payload
    text.encode("utf-8")  # storable: valid Unicode


@given(payload=payloads)
@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_payload_is_202_or_422_and_reads_back_as_sent(
    client: TestClient, app_id: str, payload: dict[str, Any]
) -> None:
    # As a client would send it: ASCII-escaped JSON (lone surrogates as \\udXXX), NaN allowed.
    body = json.dumps({"eventType": "prop.test", "payload": payload}, ensure_ascii=True, allow_nan=True)

    response = client.post(
        f"/api/v1/app/{app_id}/msg", content=body.encode(), headers={"content-type": "application/json"}
    )

    assert response.status_code in (202, 422), response.text
    if response.status_code == 422:
        assert response.json()["code"] == "validation"
        return
    assert not _contains_non_finite(payload)
    stored = client.get(f"/api/v1/app/{app_id}/msg/{response.json()['id']}")
    assert stored.status_code == 200
    # As JSON means it: an escaped surrogate pair is the one character it encodes.
    assert stored.json()["payload"] == json.loads(body)["payload"]


@given(digits=st.integers(1, 6000))
@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_an_integer_of_any_length_is_202_or_422(client: TestClient, app_id: str, digits: int) -> None:
    # Written as text: past 4300 digits Python will not turn it into a number at all.
    body = '{"eventType": "prop.big", "payload": {"n": -' + "9" * digits + "}}"

    response = client.post(
        f"/api/v1/app/{app_id}/msg", content=body.encode(), headers={"content-type": "application/json"}
    )

    assert response.status_code in (202, 422), response.text
    if response.status_code == 202:
        stored = client.get(f"/api/v1/app/{app_id}/msg/{response.json()['id']}").json()
        assert stored["payload"]["n"] == -int("9" * digits)
