"""What an operator moving to Hookpost uses through the official Svix client: ``message.precheck``
and the environment's export and import. An API server under Uvicorn on loopback (no worker:
nothing here is delivered)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from svix.api import (
    ApplicationIn,
    EndpointIn,
    EndpointPatch,
    EventTypeUpsertIn,
    MessagePrecheckIn,
    Svix,
    SvixOptions,
)
from svix.exceptions import HttpError

from hookpost.storage.migrate import upgrade_to_head
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.processes import api_server


def _hookpost(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Svix]:
    settings = make_settings(tmp_path_factory.mktemp(name))
    upgrade_to_head(settings)
    with api_server(settings) as base_url:
        yield Svix(ADMIN_TOKEN, SvixOptions(server_url=base_url))


@pytest.fixture(scope="module")
def svix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Svix]:
    yield from _hookpost(tmp_path_factory, "operator")


def test_precheck_says_whether_a_message_would_reach_an_endpoint(svix: Svix) -> None:
    app_id = svix.application.create(ApplicationIn(name="precheck-" + secrets.token_hex(4))).id

    def active(event_type: str, channels: list[str] | None = None) -> bool:
        return svix.message.precheck(app_id, MessagePrecheckIn(event_type=event_type, channels=channels)).active

    assert not active("invoice.paid")  # no endpoint yet
    svix.event_type.upsert("invoice.paid", EventTypeUpsertIn(description="An invoice was paid"))
    filtered = svix.endpoint.create(
        app_id, EndpointIn(url="http://127.0.0.1:9/a", event_types=["invoice.paid"], channels=["eu"])
    )
    assert active("invoice.paid", ["eu", "us"])
    assert not active("invoice.paid")  # a channel filter needs one of its channels
    assert not active("invoice.paid", ["us"])
    assert not active("user.created", ["eu"])

    svix.endpoint.patch(app_id, filtered.id, EndpointPatch(disabled=True))
    assert not active("invoice.paid", ["eu"])  # a disabled endpoint is sent nothing
    svix.endpoint.create(app_id, EndpointIn(url="http://127.0.0.1:9/b"))
    assert active("user.created")  # no filter: everything


def test_precheck_of_an_unknown_application_is_404(svix: Svix) -> None:
    with pytest.raises(HttpError) as refused:
        svix.message.precheck("app_" + "0" * 27, MessagePrecheckIn(event_type="invoice.paid"))
    assert refused.value.status_code == 404
