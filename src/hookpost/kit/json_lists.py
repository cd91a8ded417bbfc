"""Filters on JSON list columns (channels, tags, feature flags) that work on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, String, cast, or_
from sqlalchemy.orm import InstrumentedAttribute

JsonList = InstrumentedAttribute[Any]


def json_list_has(column: JsonList, value: str) -> ColumnElement[bool]:
    """Whether the JSON list holds ``value``.

    For names (``[a-zA-Z0-9-_.]``): quoted, one cannot match inside another, and LIKE's
    wildcards in ``value`` are escaped.
    """
    return cast(column, String).contains(f'"{value}"', autoescape=True)


def json_list_empty(column: JsonList) -> ColumnElement[bool]:
    """SQL NULL, JSON ``null`` or ``[]``."""
    return or_(column.is_(None), cast(column, String).in_(("null", "[]")))
