"""What an operator moving to Hookpost uses through the official Svix client: ``message.precheck``
and the environment's export and import. An API server under Uvicorn on loopback (no worker:
nothing here is delivered)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
from svix.api import (
    ApplicationIn,
    AppPortalAccessIn,
    ConnectorIn,
    EndpointIn,
    EndpointPatch,
    EnvironmentIn,
    EventTypeIn,
    EventTypeUpsertIn,
    MessagePrecheckIn,
    Svix,
    SvixOptions,
)
from svix.exceptions import HttpError, HTTPValidationError

from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import upgrade_to_head
from tests.support.processes import api_server


def _hookpost(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[str]:
    settings = make_settings(tmp_path_factory.mktemp(name))
    upgrade_to_head(settings)
    with api_server(settings) as base_url:
        yield base_url


def _client(base_url: str) -> Svix:
    return Svix(ADMIN_TOKEN, SvixOptions(server_url=base_url))


@pytest.fixture(scope="module")
def hookpost_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _hookpost(tmp_path_factory, "operator")


@pytest.fixture(scope="module")
def svix(hookpost_url: str) -> Svix:
    return _client(hookpost_url)


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


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Svix]:
    """A second Hookpost, empty, to import into."""
    for base_url in _hookpost(tmp_path_factory, "fresh"):
        yield _client(base_url)


def _catalogue(svix: Svix) -> list[dict[str, object]]:
    shown = svix.environment.export().event_types
    return sorted(
        (event_type.model_dump(exclude={"created_at", "updated_at"}) for event_type in shown),
        key=lambda fields: str(fields["name"]),
    )


def test_an_environment_exported_from_one_hookpost_imports_into_another(svix: Svix, fresh: Svix) -> None:
    schema = {"1": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}
    svix.event_type.create(
        EventTypeIn(
            name="order.shipped", description="Shipped", schemas=schema, feature_flags=["beta"], group_name="order"
        )
    )
    svix.event_type.create(EventTypeIn(name="order.lost", description="Lost", deprecated=True))
    svix.event_type.create(EventTypeIn(name="order.old", description="Old", archived=True))

    exported = svix.environment.export()
    assert exported.connectors == []
    assert exported.settings is not None
    assert exported.settings["displayName"] == "Webhooks"
    names = {event_type.name for event_type in exported.event_types}
    assert {"order.shipped", "order.lost", "order.old"} <= names

    fields = ("name", "description", "archived", "deprecated", "schemas", "group_name", "feature_flags")
    catalogue = [
        EventTypeIn(**{field: getattr(event_type, field) for field in fields}) for event_type in exported.event_types
    ]
    fresh.environment.import_(EnvironmentIn(event_types=catalogue, settings=exported.settings))
    assert _catalogue(fresh) == _catalogue(svix)
    shipped = fresh.event_type.get("order.shipped")
    assert shipped.schemas == schema
    assert shipped.feature_flags == ["beta"]

    # Importing again changes what it names and deletes nothing.
    fresh.environment.import_(EnvironmentIn(event_types=[EventTypeIn(name="order.lost", description="Gone")]))
    assert fresh.event_type.get("order.lost").description == "Gone"
    assert fresh.event_type.get("order.shipped").schemas == schema


def test_an_import_with_transformation_templates_is_refused_by_name(fresh: Svix) -> None:
    template = ConnectorIn(name="slack", transformation="function handler(webhook) { return webhook }")
    with pytest.raises(HTTPValidationError) as refused:
        fresh.environment.import_(EnvironmentIn(connectors=[template]))
    assert "transformation templates" in str(refused.value)


def test_the_environment_is_the_admins_alone(svix: Svix, hookpost_url: str) -> None:
    app_id = svix.application.create(ApplicationIn(name="scoped-" + secrets.token_hex(4))).id
    token = svix.authentication.app_portal_access(app_id, AppPortalAccessIn()).token
    for path in ("/api/v1/environment/export", "/api/v1/environment/import"):
        answer = httpx.post(hookpost_url + path, json={}, headers={"authorization": f"Bearer {token}"})
        assert answer.status_code == 403, answer.text
