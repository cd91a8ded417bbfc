"""Base schemas: camelCase on the wire, snake_case in Python, as the Svix API."""

from datetime import datetime
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel

from hookpost.kit.time import as_utc, iso_only


class Schema(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


UtcDatetime = Annotated[
    datetime,
    BeforeValidator(iso_only),
    AfterValidator(as_utc),
    PlainSerializer(lambda value: as_utc(value).isoformat().replace("+00:00", "Z"), return_type=str),
]


T = TypeVar("T")


class ListResponse(Schema, Generic[T]):
    data: list[T]
    iterator: str | None
    prev_iterator: str | None = None
    done: bool
