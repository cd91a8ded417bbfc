"""Query filters shared by the list routes."""

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import AfterValidator, BeforeValidator
from sqlalchemy import ColumnElement, Text, cast, or_
from sqlalchemy.orm import InstrumentedAttribute

from hookpost.kit.time import as_utc, iso_only

# Stored times are UTC; a filter in another zone (or none, taken as UTC) is converted first.
_Utc = Annotated[datetime, BeforeValidator(iso_only), AfterValidator(as_utc)]

Before = Annotated[_Utc | None, Query(description="Only items created before this time (ISO 8601)")]
After = Annotated[_Utc | None, Query(description="Only items created after this time (ISO 8601)")]

Channel = Annotated[str | None, Query(max_length=256, description="Only items whose message has this channel")]
Tag = Annotated[str | None, Query(max_length=256, description="Only items whose message has this tag")]


def json_list_has(column: ColumnElement[Any] | InstrumentedAttribute[Any], value: str) -> ColumnElement[bool]:
    """``column`` (a JSON list of strings) holds ``value``; the same SQL on SQLite and PostgreSQL.

    A JSON list stored by SQLAlchemy reads back as its text, where each member appears quoted.
    """
    return cast(column, Text).contains(json.dumps(value), autoescape=True)


def comma_separated(values: list[str] | None) -> list[str]:
    """A list query parameter: the Svix clients send it as one comma-separated value."""
    return [name for value in values or [] for name in value.split(",") if name]


def json_list_empty(column: ColumnElement[Any] | InstrumentedAttribute[Any]) -> ColumnElement[bool]:
    """SQL NULL, JSON ``null`` or ``[]``."""
    return or_(column.is_(None), cast(column, Text).in_(("null", "[]")))
