import enum

from pydantic import Field

from hookpost.kit.schemas import Schema
from hookpost.kit.validation import Name


class BulkExpungeIn(Schema):
    ids: list[Name] = Field(min_length=1, max_length=1000, description="Message ids or eventIds")


class BulkExpungeStatus(enum.StrEnum):
    EXPUNGED = "expunged"
    NOT_FOUND = "not-found"


class BulkExpungeOut(Schema):
    results: dict[str, BulkExpungeStatus]
