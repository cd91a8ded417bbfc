"""SQL conditions the list queries share (their query parameters: ``api.query``)."""

import json
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, or_
from sqlalchemy.orm import InstrumentedAttribute


def json_list_has(column: ColumnElement[Any] | InstrumentedAttribute[Any], value: str) -> ColumnElement[bool]:
    """``column`` (a JSON list of strings) holds ``value``; the same SQL on SQLite and PostgreSQL.

    A JSON list stored by SQLAlchemy reads back as its text, where each member appears quoted.
    """
    return cast(column, Text).contains(json.dumps(value), autoescape=True)


def json_list_empty(column: ColumnElement[Any] | InstrumentedAttribute[Any]) -> ColumnElement[bool]:
    """SQL NULL, JSON ``null`` or ``[]``."""
    return or_(column.is_(None), cast(column, Text).in_(("null", "[]")))
