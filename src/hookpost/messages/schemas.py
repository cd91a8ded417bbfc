from datetime import timedelta
from typing import Any, Self

from pydantic import Field, PrivateAttr, model_validator

from hookpost.applications.schemas import ApplicationIn
from hookpost.kit.schemas import Schema, UtcDatetime
from hookpost.kit.time import utcnow
from hookpost.kit.unsupported import NotSupported
from hookpost.kit.validation import MAX_PAYLOAD_DEPTH, Name, Uid, payload_json

# As Svix: deliverAt at most a day ahead; payload retention of 5 to 90 days, or 1 to 2160 hours.
MAX_DELIVER_AHEAD = timedelta(days=1)


class MessagePrecheckIn(Schema):
    event_type: Name
    channels: list[Name] | None = Field(default=None, max_length=10)


class MessagePrecheckOut(Schema):
    active: bool = Field(description="Whether an enabled endpoint would be sent such a message")


class MessageIn(Schema):
    event_type: Name
    payload: dict[str, Any] = Field(
        description=f"Any JSON object nested at most {MAX_PAYLOAD_DEPTH} levels deep; no NaN or Infinity"
    )
    event_id: Uid | None = Field(default=None, description="Your id for the event; a repeat is not sent twice")
    channels: list[Name] | None = Field(default=None, max_length=10)
    tags: list[Name] | None = Field(default=None, max_length=5)
    application: ApplicationIn | None = Field(
        default=None, description="Create the application with these fields if it does not exist yet"
    )
    deliver_at: UtcDatetime | None = Field(
        default=None, description="Not sent before this time (at most 24 h ahead); a past time sends at once"
    )
    payload_retention_period: int | None = Field(
        default=None, ge=5, le=90, description="Days to keep the payload (default: HOOKPOST_RETENTION_DAYS)"
    )
    payload_retention_hours: int | None = Field(
        default=None, ge=1, le=90 * 24, description="Hours to keep the payload; instead of payloadRetentionPeriod"
    )
    transformations_params: NotSupported
    # The payload's JSON text, made once while validating: stored, signed and sent as is.
    _payload_json: str = PrivateAttr()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.payload_retention_period is not None and self.payload_retention_hours is not None:
            raise ValueError("payloadRetentionPeriod and payloadRetentionHours are mutually exclusive")
        if self.deliver_at is not None and self.deliver_at > utcnow() + MAX_DELIVER_AHEAD:
            raise ValueError("deliverAt must be at most 24 hours ahead")
        self._payload_json = payload_json(self.payload)
        return self

    @property
    def payload_json(self) -> str:
        return self._payload_json

    def payload_retention(self) -> timedelta | None:
        """How long this message's payload is kept, when it says; None: the default."""
        if self.payload_retention_hours is not None:
            return timedelta(hours=self.payload_retention_hours)
        if self.payload_retention_period is not None:
            return timedelta(days=self.payload_retention_period)
        return None


class MessageOut(Schema):
    id: str
    event_type: str
    event_id: str | None
    payload: dict[str, Any]
    channels: list[str] | None
    tags: list[str] | None
    timestamp: UtcDatetime
    deliver_at: UtcDatetime | None = None
