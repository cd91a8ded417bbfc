from pydantic import Field

from hookpost.kit.schemas import Schema, UtcDatetime
from hookpost.kit.validation import Metadata, Text, ThrottleRate, Uid, omittable


class ApplicationIn(Schema):
    name: Text = Field(min_length=1, max_length=256)
    uid: Uid | None = Field(default=None, description="Your own id for the application; usable wherever an id is")
    throttle_rate: ThrottleRate | None = None
    metadata: Metadata = Field(default_factory=dict)


class ApplicationPatch(Schema):
    """Only the fields sent change; ``null`` clears ``uid`` and ``throttleRate``.

    ``name`` and ``metadata`` cannot be null (send ``{}`` to clear the metadata).
    """

    name: Text = omittable(min_length=1, max_length=256)
    uid: Uid | None = None
    throttle_rate: ThrottleRate | None = None
    metadata: Metadata = omittable()


class ApplicationOut(Schema):
    id: str
    uid: str | None
    name: str
    throttle_rate: int | None
    metadata: dict[str, str] = Field(validation_alias="metadata_")
    created_at: UtcDatetime
    updated_at: UtcDatetime
