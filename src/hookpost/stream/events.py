"""The events of the live stream: one JSON object per WebSocket text message.

Every event has ``type`` and ``timestamp`` (ISO 8601, UTC); the rest names the ids it
concerns, in the API's camelCase. Events about an application carry its ``appId`` (the
``app_...`` id, whichever of id or uid the client connected with); notices about the
connection itself are ``stream.*``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hookpost.kit.time import as_utc, utcnow

MESSAGE_CREATED = "message.created"
ATTEMPT_SUCCEEDED = "attempt.succeeded"
ATTEMPT_FAILED = "attempt.failed"
ENDPOINT_DISABLED = "endpoint.disabled"
DESTINATION_ATTEMPT_SUCCEEDED = "destination.attempt.succeeded"
DESTINATION_ATTEMPT_FAILED = "destination.attempt.failed"
# Notices about the connection, never published on the bus.
STREAM_HELLO = "stream.hello"
STREAM_LAGGED = "stream.lagged"
STREAM_INTERRUPTED = "stream.interrupted"


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """An event for one application's stream, already in its wire form."""

    app_id: str
    text: str


def _timestamp(at: datetime | None) -> str:
    return as_utc(at or utcnow()).isoformat().replace("+00:00", "Z")


def _json(type_: str, at: datetime | None, fields: dict[str, Any]) -> str:
    return json.dumps({"type": type_, "timestamp": _timestamp(at), **fields}, separators=(",", ":"))


def _event(type_: str, app_id: str, at: datetime | None, **fields: Any) -> StreamEvent:
    return StreamEvent(app_id, _json(type_, at, {"appId": app_id, **fields}))


def message_created(app_id: str, msg_id: str, event_type: str, event_id: str | None, at: datetime) -> StreamEvent:
    return _event(MESSAGE_CREATED, app_id, at, msgId=msg_id, eventType=event_type, eventId=event_id)


def attempt_recorded(
    *,
    succeeded: bool,
    app_id: str,
    msg_id: str,
    endpoint_id: str,
    attempt_id: str,
    status_code: int | None,
    at: datetime,
) -> StreamEvent:
    """``attempt.succeeded`` or ``attempt.failed``; ``statusCode`` is null when there was no answer."""
    type_ = ATTEMPT_SUCCEEDED if succeeded else ATTEMPT_FAILED
    return _event(type_, app_id, at, msgId=msg_id, endpointId=endpoint_id, attemptId=attempt_id, statusCode=status_code)


def endpoint_disabled(
    *, app_id: str, endpoint_id: str, reason: str | None, msg_id: str, attempt_id: str, at: datetime
) -> StreamEvent:
    """Hookpost disabled the endpoint; ``msgId`` and ``attemptId`` are the attempt that tipped it."""
    return _event(
        ENDPOINT_DISABLED, app_id, at, endpointId=endpoint_id, reason=reason, msgId=msg_id, attemptId=attempt_id
    )


def destination_attempt_recorded(
    *,
    succeeded: bool,
    app_id: str,
    destination_id: str,
    attempt_id: str,
    first_msg_id: str,
    last_msg_id: str,
    message_count: int,
    status_code: int | None,
    disabled: bool,
    at: datetime,
) -> StreamEvent:
    """A FIFO destination's batch attempt (``firstMsgId`` to ``lastMsgId``); ``disabled``: this
    failure spent the retry schedule and disabled the destination."""
    type_ = DESTINATION_ATTEMPT_SUCCEEDED if succeeded else DESTINATION_ATTEMPT_FAILED
    return _event(
        type_,
        app_id,
        at,
        destinationId=destination_id,
        attemptId=attempt_id,
        firstMsgId=first_msg_id,
        lastMsgId=last_msg_id,
        messageCount=message_count,
        statusCode=status_code,
        disabled=disabled,
    )


def hello(app_id: str, pid: int) -> str:
    """The first message of a stream: from here on every event of the application arrives."""
    return _json(STREAM_HELLO, None, {"appId": app_id, "pid": pid})


def lagged(dropped: int) -> str:
    """``dropped`` events were not sent here because this client read too slowly."""
    return _json(STREAM_LAGGED, None, {"dropped": dropped})


def interrupted() -> str:
    """This API process lost the bus for a while: events from then are missing, number unknown."""
    return _json(STREAM_INTERRUPTED, None, {})


def app_id_of(text: str) -> str | None:
    """The ``appId`` of an event in wire form, or None if it is not one."""
    try:
        body = json.loads(text)
    except ValueError:
        return None
    app_id = body.get("appId") if isinstance(body, dict) else None
    return app_id if isinstance(app_id, str) else None
