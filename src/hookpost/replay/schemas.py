from typing import Annotated

from pydantic import Field

from hookpost.attempts.schemas import StatusCodeClass
from hookpost.kit.schemas import Schema, UtcDatetime
from hookpost.kit.validation import JSON_INTEGER, Name
from hookpost.storage.models import MessageStatus


class ReplayIn(Schema):
    since: UtcDatetime = Field(description="Messages created from this time")
    until: UtcDatetime | None = Field(default=None, description="... up to this time (default: now)")


class BulkReplayIn(ReplayIn):
    event_types: list[Name] | None = Field(default=None, description="Only messages of these event types")
    channel: Name | None = Field(default=None, description="Only messages with this channel")
    tag: Name | None = Field(default=None, description="Only messages with this tag")
    # A boolean is not a status (false is not 0).
    status: Annotated[MessageStatus, JSON_INTEGER] | None = Field(
        default=None, description="Only deliveries that ended in this status"
    )
    status_code_class: Annotated[StatusCodeClass, JSON_INTEGER] | None = Field(
        default=None, description="Only deliveries whose last response was of this class (0: none)"
    )
