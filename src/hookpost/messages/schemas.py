from typing import Any

from pydantic import Field

from hookpost.applications.schemas import ApplicationIn
from hookpost.kit.schemas import Schema, UtcDatetime
from hookpost.kit.validation import Name


class MessageIn(Schema):
    event_type: Name
    payload: dict[str, Any]
    event_id: Name | None = Field(default=None, description="Your id for the event; a repeat is not sent twice")
    channels: list[Name] | None = Field(default=None, max_length=10)
    tags: list[Name] | None = Field(default=None, max_length=5)
    application: ApplicationIn | None = Field(
        default=None, description="Create the application with these fields if it does not exist yet"
    )


class MessageOut(Schema):
    id: str
    event_type: str
    event_id: str | None
    payload: dict[str, Any]
    channels: list[str] | None
    tags: list[str] | None
    timestamp: UtcDatetime
