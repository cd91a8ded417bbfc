"""The operational events, stored as messages of the operational application in the same
transaction as the change they report: an event is never lost, nor sent for a change that
was rolled back.

Endpoint events come from an ``after_flush`` hook on every session, so each way an endpoint
changes (the API, or the delivery engine disabling it) reports itself. The processes that
change endpoints install it when they are wired (``install``), not this module's import. Attempt events come
from ``attempt_recorded``, which the delivery engine calls where it records an attempt.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import event, insert, inspect, select
from sqlalchemy.orm import Session

from hookpost.kit.ids import new_id
from hookpost.kit.time import utcnow
from hookpost.operational.ids import OPERATIONAL_APP_ID
from hookpost.storage.models import Application, Attempt, Delivery, Endpoint, Message, MessageStatus, TriggerType

ENDPOINT_CREATED = "endpoint.created"
ENDPOINT_UPDATED = "endpoint.updated"
ENDPOINT_DELETED = "endpoint.deleted"
ENDPOINT_DISABLED = "endpoint.disabled"
ENDPOINT_ENABLED = "endpoint.enabled"
ATTEMPT_EXHAUSTED = "message.attempt.exhausted"
ATTEMPT_FAILING = "message.attempt.failing"
ATTEMPT_RECOVERED = "message.attempt.recovered"
EVENT_TYPES = (
    ENDPOINT_CREATED,
    ENDPOINT_UPDATED,
    ENDPOINT_DELETED,
    ENDPOINT_DISABLED,
    ENDPOINT_ENABLED,
    ATTEMPT_EXHAUSTED,
    ATTEMPT_FAILING,
    ATTEMPT_RECOVERED,
)
# As Svix: "failing" on a delivery's fourth failed attempt in a row, "recovered" on a success after it.
FAILING_AT = 4

# A change to any of these is an endpoint.updated; failure bookkeeping is not.
_UPDATE_FIELDS = (
    "url",
    "description",
    "uid",
    "event_types",
    "channels",
    "throttle_rate",
    "metadata_",
    "headers",
    "secret",
)


def _timestamp() -> str:
    return utcnow().isoformat().replace("+00:00", "Z")


def emit(session: Session, event_type: str, data: dict[str, Any]) -> None:
    """Store the event as a message to every enabled operational endpoint that wants it.

    Nothing is stored when no operational endpoint wants it.
    """
    with session.no_autoflush:
        endpoints = [
            endpoint
            for endpoint in session.scalars(
                select(Endpoint).where(Endpoint.app_id == OPERATIONAL_APP_ID, Endpoint.disabled.is_(False))
            )
            if not endpoint.event_types or event_type in endpoint.event_types
        ]
    if not endpoints:
        return
    now = utcnow()
    msg_id = new_id("msg")
    # Core inserts, message first: this runs after a flush, where the ORM adds nothing more.
    session.execute(
        insert(Message).values(
            id=msg_id,
            app_id=OPERATIONAL_APP_ID,
            event_type=event_type,
            payload=json.dumps({"type": event_type, "timestamp": _timestamp(), "data": data}, separators=(",", ":")),
            channels=None,
            tags=None,
            created_at=now,
        )
    )
    # Left for the scheduler to queue (within HOOKPOST_SCHEDULER_INTERVAL): the code that
    # made the change need not know about operational webhooks to publish them.
    session.execute(
        insert(Delivery),
        [
            {
                "id": new_id("dlv"),
                "app_id": OPERATIONAL_APP_ID,
                "msg_id": msg_id,
                "endpoint_id": endpoint.id,
                "status": MessageStatus.PENDING,
                "trigger_type": TriggerType.SCHEDULED,
                "attempt_count": 0,
                "next_attempt_at": now,
                "queued_until": None,
                "created_at": now,
                "updated_at": now,
            }
            for endpoint in endpoints
        ],
    )


def _app_uid(session: Session, app_id: str) -> str | None:
    with session.no_autoflush:
        application = session.get(Application, app_id)
    return None if application is None else application.uid


def _endpoint_data(session: Session, endpoint: Endpoint) -> dict[str, Any]:
    return {
        "appId": endpoint.app_id,
        "appUid": _app_uid(session, endpoint.app_id),
        "endpointId": endpoint.id,
        "endpointUid": endpoint.uid,
    }


def _changed(endpoint: Endpoint, field: str) -> bool:
    return bool(inspect(endpoint).attrs[field].history.has_changes())


def _endpoint_events(session: Session) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for endpoint in session.new:
        if isinstance(endpoint, Endpoint) and endpoint.app_id != OPERATIONAL_APP_ID:
            found.append((ENDPOINT_CREATED, _endpoint_data(session, endpoint)))
    for endpoint in session.deleted:
        if isinstance(endpoint, Endpoint) and endpoint.app_id != OPERATIONAL_APP_ID:
            found.append((ENDPOINT_DELETED, _endpoint_data(session, endpoint)))
    for endpoint in session.dirty:
        if not isinstance(endpoint, Endpoint) or endpoint.app_id == OPERATIONAL_APP_ID:
            continue
        if _changed(endpoint, "disabled"):
            data = _endpoint_data(session, endpoint)
            if endpoint.disabled:
                automatic = endpoint.disabled_reason is not None
                data["trigger"] = "automatic" if automatic else "manual"
                if automatic and endpoint.failing_since is not None:
                    data["failSince"] = endpoint.failing_since.isoformat()
                found.append((ENDPOINT_DISABLED, data))
            else:
                found.append((ENDPOINT_ENABLED, data))
        elif any(_changed(endpoint, field) for field in _UPDATE_FIELDS):
            found.append((ENDPOINT_UPDATED, _endpoint_data(session, endpoint)))
    return found


# After the flush, which still shows what it wrote (new, dirty, deleted, attribute history).
def _report_endpoint_changes(session: Session, *_: object) -> None:
    for event_type, data in _endpoint_events(session):
        emit(session, event_type, data)


def install() -> None:
    """Report endpoint changes from every session of this process (idempotent)."""
    if not event.contains(Session, "after_flush", _report_endpoint_changes):
        event.listen(Session, "after_flush", _report_endpoint_changes)


def attempt_recorded(session: Session, delivery: Delivery, attempt: Attempt) -> None:
    """Report an attempt that exhausted its delivery, made it failing, or recovered it.

    Called with the delivery as the attempt left it; most attempts report nothing and cost
    no query.
    """
    if delivery.app_id == OPERATIONAL_APP_ID:
        return  # an operational event about an operational event would never end
    failed = attempt.status != MessageStatus.SUCCESS
    if failed and delivery.status == MessageStatus.FAIL:
        event_type = ATTEMPT_EXHAUSTED
    elif failed and delivery.attempt_count == FAILING_AT:
        event_type = ATTEMPT_FAILING
    elif not failed and delivery.attempt_count > FAILING_AT:
        event_type = ATTEMPT_RECOVERED
    else:
        return
    with session.no_autoflush:
        message = session.get(Message, delivery.msg_id)
    emit(
        session,
        event_type,
        {
            "appId": delivery.app_id,
            "appUid": _app_uid(session, delivery.app_id),
            "msgId": delivery.msg_id,
            "msgEventId": None if message is None else message.event_id,
            "endpointId": delivery.endpoint_id,
            "lastAttempt": {
                "id": attempt.id,
                "timestamp": attempt.created_at.isoformat().replace("+00:00", "Z"),
                "responseStatusCode": attempt.response_status_code,
            },
        },
    )
