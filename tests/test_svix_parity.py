"""The official Svix Python client on what Hookpost added for parity with the Svix server:
event types, app portal access tokens and their scope, send-example, endpoint stats and
messages, content expunge, health. The fixtures are those of tests/test_svix_client.py:
a Hookpost (API server and worker) and a receiver for this module.
"""

from __future__ import annotations

import httpx
import pytest
import standardwebhooks
from svix.api import (
    ApplicationIn,
    ApplicationTokenExpireIn,
    AppPortalAccessIn,
    AppPortalCapability,
    EndpointIn,
    EndpointPatch,
    EventExampleIn,
    EventTypeDeleteOptions,
    EventTypeImportOpenApiIn,
    EventTypeIn,
    EventTypeListOptions,
    EventTypePatch,
    EventTypeUpsertIn,
    MessageAttemptListAttemptedMessagesOptions,
    MessageAttemptListByMsgOptions,
    MessageGetOptions,
    MessageIn,
    MessageStatus,
    Svix,
    SvixOptions,
)
from svix.exceptions import HttpError, HTTPValidationError

from tests.support.receiver import Receiver
from tests.test_svix_client import (  # the module's shared server, receiver and client
    Hookpost,
    Subscriber,
    eventually,
    hookpost,
    hooks,
    subscriber,
    svix,
    unique,
)

__all__ = ["hookpost", "hooks", "subscriber", "svix"]

SCHEMA = {
    "type": "object",
    "required": ["invoice"],
    "properties": {"invoice": {"type": "integer"}},
    "examples": [{"invoice": 1}, {"invoice": 2}],
}


def test_event_types_round_trip(svix: Svix) -> None:
    name = unique("invoice.paid")

    made = svix.event_type.create(
        EventTypeIn(name=name, description="Paid", schemas={"1": SCHEMA}, group_name="billing", feature_flags=["b"])
    )
    patched = svix.event_type.patch(name, EventTypePatch(deprecated=True))
    upserted = svix.event_type.upsert(name, EventTypeUpsertIn(description="Paid v2", schemas={"1": SCHEMA}))

    assert (made.name, made.schemas, made.group_name, made.feature_flags) == (name, {"1": SCHEMA}, "billing", ["b"])
    assert (made.archived, made.deprecated, patched.deprecated) == (False, False, True)
    assert (upserted.description, upserted.deprecated) == ("Paid v2", False)
    assert svix.event_type.get(name).description == "Paid v2"
    listed = svix.event_type.list(EventTypeListOptions(limit=250, with_content=True))
    assert next(e for e in listed.data if e.name == name).schemas == {"1": SCHEMA}

    svix.event_type.delete(name)
    assert svix.event_type.get(name).archived is True
    assert name not in {e.name for e in svix.event_type.list(EventTypeListOptions(limit=250)).data}
    svix.event_type.delete(name, EventTypeDeleteOptions(expunge=True))
    with pytest.raises(HttpError) as gone:
        svix.event_type.get(name)
    assert gone.value.status_code == 404


def test_import_openapi(svix: Svix) -> None:
    name = unique("order.shipped")
    spec = {"openapi": "3.1.0", "webhooks": {name: {"post": {"summary": "Shipped"}}}}

    dry = svix.event_type.import_openapi(EventTypeImportOpenApiIn(spec=spec, dry_run=True))
    done = svix.event_type.import_openapi(EventTypeImportOpenApiIn(spec=spec))

    assert [item.name for item in dry.data.to_modify or []] == [name]
    assert done.data.modified == [name]
    assert svix.event_type.get(name).description == "Shipped"


def test_an_endpoint_filters_only_on_known_event_types(subscriber: Subscriber, svix: Svix) -> None:
    name = unique("known")
    with pytest.raises(HTTPValidationError):
        svix.endpoint.patch(subscriber.app.id, subscriber.endpoint.id, EndpointPatch(event_types=[name]))

    svix.event_type.create(EventTypeIn(name=name, description=""))
    patched = svix.endpoint.patch(subscriber.app.id, subscriber.endpoint.id, EndpointPatch(event_types=[name]))

    assert patched.event_types == [name]


def test_send_example_arrives_signed_at_that_endpoint(subscriber: Subscriber, svix: Svix) -> None:
    name = unique("example")
    svix.event_type.create(EventTypeIn(name=name, description="", schemas={"1": SCHEMA}))

    sent = svix.endpoint.send_example(
        subscriber.app.id, subscriber.endpoint.id, EventExampleIn(event_type=name, example_index=1)
    )

    [request] = subscriber.wait_for_requests(sent.id)
    assert standardwebhooks.Webhook(subscriber.secret()).verify(request.body, request.headers) == {"invoice": 2}
    assert sent.event_type == name


def test_stats_and_attempted_messages_after_a_delivery(subscriber: Subscriber, svix: Svix) -> None:
    app_id, endpoint_id = subscriber.app.id, subscriber.endpoint.id
    msg_id = subscriber.send("invoice.paid", invoice=7)
    subscriber.wait_for_requests(msg_id)

    def delivered() -> int | None:
        stats = svix.endpoint.get_stats(app_id, endpoint_id)
        return stats.success if stats.success == 1 else None

    eventually(delivered, "the delivery counted as a success")
    stats = svix.endpoint.get_stats(app_id, endpoint_id)
    assert (stats.pending, stats.sending, stats.fail, stats.canceled) == (0, 0, 0, 0)
    [listed] = svix.message_attempt.list_attempted_messages(app_id, endpoint_id).data
    assert (listed.id, listed.status, listed.payload) == (msg_id, MessageStatus.SUCCESS, {})
    with_content = svix.message_attempt.list_attempted_messages(
        app_id, endpoint_id, MessageAttemptListAttemptedMessagesOptions(with_content=True, status=MessageStatus.FAIL)
    )
    assert with_content.data == []


def test_expunge_message_and_attempt_content(subscriber: Subscriber, svix: Svix) -> None:
    app_id = subscriber.app.id
    msg_id = subscriber.send("invoice.paid", card="4242")
    subscriber.wait_for_attempts(msg_id, 1)
    # The v2 client lists attempts without their response bodies unless asked.
    [attempt] = svix.message_attempt.list_by_msg(app_id, msg_id, MessageAttemptListByMsgOptions(with_content=True)).data
    assert attempt.response == "ok"

    svix.message.expunge_content(app_id, msg_id)
    svix.message_attempt.expunge_content(app_id, msg_id, attempt.id)

    assert svix.message.get(app_id, msg_id, MessageGetOptions(with_content=True)).payload == {}
    assert svix.message_attempt.get(app_id, msg_id, attempt.id).response == ""


def test_app_portal_access_is_scoped_to_its_application(svix: Svix, hookpost: Hookpost, hooks: Receiver) -> None:
    mine = svix.application.create(ApplicationIn(name="Mine", uid=unique("mine")))
    other = svix.application.create(ApplicationIn(name="Other"))

    access = svix.authentication.app_portal_access(mine.id, AppPortalAccessIn())
    portal = Svix(access.token, SvixOptions(server_url=hookpost.base_url))
    made = portal.endpoint.create(mine.id, EndpointIn(url=f"{hooks.url}/portal"))

    assert access.url.startswith(hookpost.base_url + "/portal#key=")
    assert [e.id for e in portal.endpoint.list(mine.uid or "").data] == [made.id]
    for refused in (
        lambda: portal.message.create(mine.id, MessageIn(event_type="a", payload={})),  # the operator's
        lambda: portal.endpoint.list(other.id),
        portal.application.list,
        lambda: portal.application.delete(mine.id),
        lambda: portal.authentication.app_portal_access(other.id, AppPortalAccessIn()),
    ):
        with pytest.raises(HttpError) as forbidden:
            refused()
        assert forbidden.value.status_code == 403

    portal.authentication.logout()
    with pytest.raises(HttpError) as logged_out:
        portal.endpoint.list(mine.id)
    assert logged_out.value.status_code == 401


def test_a_read_only_token_reads_only(subscriber: Subscriber, svix: Svix, hookpost: Hookpost) -> None:
    access = svix.authentication.app_portal_access(subscriber.app.id, AppPortalAccessIn(read_only=True, expiry=3600))
    reader = Svix(access.token, SvixOptions(server_url=hookpost.base_url))

    assert reader.endpoint.get(subscriber.app.id, subscriber.endpoint.id).url == subscriber.endpoint.url
    for refused in (
        lambda: reader.endpoint.get_secret(subscriber.app.id, subscriber.endpoint.id),
        lambda: reader.message.create(subscriber.app.id, MessageIn(event_type="a", payload={})),
    ):
        with pytest.raises(HttpError) as forbidden:
            refused()
        assert forbidden.value.status_code == 403


def test_capabilities_and_expire_all_with_the_svix_client(svix: Svix, hookpost: Hookpost, hooks: Receiver) -> None:
    mine = svix.application.create(ApplicationIn(name="Mine"))
    other = svix.application.create(ApplicationIn(name="Other"))
    endpoint = svix.endpoint.create(mine.id, EndpointIn(url=f"{hooks.url}/expire"))

    def client_of(app_id: str, *capabilities: AppPortalCapability) -> Svix:
        access = AppPortalAccessIn(capabilities=list(capabilities) or None, expiry=3600)
        token = svix.authentication.app_portal_access(app_id, access).token
        return Svix(token, SvixOptions(server_url=hookpost.base_url))

    secrets_only = client_of(mine.id, AppPortalCapability.VIEW_BASE, AppPortalCapability.VIEW_ENDPOINT_SECRET)
    assert secrets_only.endpoint.get_secret(mine.id, endpoint.id).key.startswith("whsec_")
    with pytest.raises(HttpError) as refused:
        secrets_only.endpoint.delete(mine.id, endpoint.id)
    assert refused.value.status_code == 403
    with pytest.raises(HTTPValidationError):
        client_of(mine.id, AppPortalCapability.MANAGE_TRANSFORMATIONS)

    full, kept = client_of(mine.id), client_of(other.id)
    with pytest.raises(HttpError) as not_the_admin:
        full.authentication.expire_all(mine.id, ApplicationTokenExpireIn())
    assert not_the_admin.value.status_code == 403

    svix.authentication.expire_all(mine.id, ApplicationTokenExpireIn())

    for ended in (full, secrets_only):
        with pytest.raises(HttpError) as expired:
            ended.endpoint.list(mine.id)
        assert expired.value.status_code == 401
    assert kept.endpoint.list(other.id).data == []  # another application's tokens live on
    assert svix.endpoint.get(mine.id, endpoint.id).id == endpoint.id


def test_health(svix: Svix, hookpost: Hookpost) -> None:
    svix.health.get()

    ping = httpx.get(f"{hookpost.base_url}/api/v1/health/ping")

    assert (ping.status_code, ping.content) == (204, b"")
