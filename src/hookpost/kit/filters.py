"""SQL conditions the list queries share (their query parameters: ``api.query``)."""

import json
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Text, cast, literal, or_
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

_LIKE_ESCAPE = "/"


class JsonListHas(FunctionElement[bool]):
    """A JSON list column holds a string: containment of JSONB on PostgreSQL, which the GIN
    indexes on message channels and tags serve; a match in the stored text elsewhere. Its
    arguments are the column, the LIKE pattern and the JSONB list (each dialect renders one)."""

    type = Boolean()
    inherit_cache = True
    name = "json_list_has"
    # A condition in itself: without this, SQLite (no native boolean) would get "... = 1" added.
    _is_implicitly_boolean = True


@compiles(JsonListHas)
def _in_stored_text(element: JsonListHas, compiler: SQLCompiler, **kw: Any) -> str:
    # A JSON list stored by SQLAlchemy reads back as its text, where each member appears quoted.
    column, pattern, _ = element.clauses
    return compiler.process(cast(column, Text).like(pattern, escape=_LIKE_ESCAPE), **kw)


@compiles(JsonListHas, "postgresql")
def _jsonb_contains(element: JsonListHas, compiler: SQLCompiler, **kw: Any) -> str:
    column, _, members = element.clauses
    return compiler.process(cast(column, JSONB).contains(members), **kw)


def _like_pattern(member: str) -> str:
    quoted = json.dumps(member)
    for char in (_LIKE_ESCAPE, "%", "_"):
        quoted = quoted.replace(char, _LIKE_ESCAPE + char)
    return f"%{quoted}%"


def json_list_has(column: ColumnElement[Any] | InstrumentedAttribute[Any], value: str) -> ColumnElement[bool]:
    """``column`` (a JSON list of strings) holds ``value``."""
    # The list as JSON text cast in SQL: the same statement renders with literal values too.
    return JsonListHas(column, literal(_like_pattern(value), Text), cast(literal(json.dumps([value]), Text), JSONB))


def json_list_empty(column: ColumnElement[Any] | InstrumentedAttribute[Any]) -> ColumnElement[bool]:
    """SQL NULL, JSON ``null`` or ``[]``."""
    return or_(column.is_(None), cast(column, Text).in_(("null", "[]")))
