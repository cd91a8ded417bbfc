from typing import Any

from pydantic import Field, PrivateAttr, model_validator

from hookpost.applications.schemas import ApplicationIn
from hookpost.kit.schemas import Schema, UtcDatetime
from hookpost.kit.validation import MAX_PAYLOAD_DEPTH, Name, payload_json


class MessageIn(Schema):
    event_type: Name
    payload: dict[str, Any] = Field(
        description=f"Any JSON object nested at most {MAX_PAYLOAD_DEPTH} levels deep; no NaN or Infinity"
    )
    event_id: Name | None = Field(default=None, description="Your id for the event; a repeat is not sent twice")
    channels: list[Name] | None = Field(default=None, max_length=10)
    tags: list[Name] | None = Field(default=None, max_length=5)
    application: ApplicationIn | None = Field(
        default=None, description="Create the application with these fields if it does not exist yet"
    )
    # The payload's JSON text, made once while validating: stored, signed and sent as is.
    _payload_json: str = PrivateAttr()

    @model_validator(mode="after")
    def _payload_storable(self) -> "MessageIn":
        self._payload_json = payload_json(self.payload)
        return self

    @property
    def payload_json(self) -> str:
        return self._payload_json


class MessageOut(Schema):
    id: str
    event_type: str
    event_id: str | None
    payload: dict[str, Any]
    channels: list[str] | None
    tags: list[str] | None
    timestamp: UtcDatetime
