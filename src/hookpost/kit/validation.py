"""Field types and checks shared by the request schemas."""

import json
import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from hookpost.kit.errors import InvalidInput
from hookpost.kit.ids import ID_PATTERN

# Svix's rule for uids and event type names; the one definition, for bodies and paths alike.
_NAME_CHARACTERS = r"a-zA-Z0-9\-_."
NAME_PATTERN = rf"^[{_NAME_CHARACTERS}]+$"
NAME_MAX_LENGTH = 256
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, min_length=1, max_length=NAME_MAX_LENGTH)]
# A query's list of names: the parameter repeated, or names joined by commas (as Svix's clients send).
Names = Annotated[str, StringConstraints(pattern=rf"^[{_NAME_CHARACTERS},]+$")]

_ID_SHAPE = re.compile(ID_PATTERN)


def _not_an_id(value: str) -> str:
    # Things are looked up by id or uid: a uid that could be an id could pass for another's.
    if _ID_SHAPE.match(value):
        raise ValueError("a uid may not look like an id (a prefix such as app_ or ep_, then 22 letters or digits)")
    return value


# The OpenAPI document states the rule too, as the ``not`` of an id's pattern.
Uid = Annotated[Name, AfterValidator(_not_an_id), Field(json_schema_extra={"not": {"pattern": ID_PATTERN}})]
_UID = TypeAdapter(Uid)


def uid_from_path(value: str, parameter: str) -> str:
    """A path's id or uid, checked as the uid of what an upsert creates: refused (naming the
    path parameter) exactly as the same uid in a body would be."""
    try:
        uid: str = _UID.validate_python(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InvalidInput(("path", parameter), error["msg"], error["type"]) from exc
    return uid


# Free text stored in a text column: PostgreSQL refuses the NUL character there.
NO_NUL_PATTERN = r"^[^\x00]*$"
Text = Annotated[str, StringConstraints(pattern=NO_NUL_PATTERN)]


class KeysAsPropertyNames:
    """States a dict's key rule as JSON Schema's ``propertyNames``.

    pydantic states a constrained key type as ``patternProperties``, which only constrains the
    keys that match and lets any other through: so the document allowed keys the server
    refuses. The key rule moves to ``propertyNames``, and the values' to ``additionalProperties``.
    """

    def __get_pydantic_json_schema__(self, core: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core)
        ((key_pattern, value_schema),) = schema.pop("patternProperties").items()
        schema["propertyNames"] = {"pattern": key_pattern}
        schema["additionalProperties"] = value_schema
        return schema


Metadata = Annotated[dict[Text, Text], Field(max_length=64), KeysAsPropertyNames()]


def _json_integer(value: object) -> object:
    """A JSON integer: ``5`` or ``5.0`` (JSON Schema's ``integer`` takes both), never ``true``
    (which pydantic would take for 1) nor ``"5"``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected an integer")
    return value


# For an integer enum (a status, a status class): its number, never a boolean.
JSON_INTEGER = BeforeValidator(_json_integer)

# Bounds straight on the int, before the validator: so they reach the OpenAPI document as
# minimum and maximum.
ThrottleRate = Annotated[
    int, Field(ge=1, le=100_000), BeforeValidator(_json_integer), Field(description="Messages per second")
]
GracePeriod = Annotated[int, Field(ge=0, le=7 * 24 * 3600), BeforeValidator(_json_integer)]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omittable(**constraints: Any) -> Any:
    """A PATCH field that may be left out but not sent as ``null``.

    Its ``None`` default is never applied (PATCH applies only the fields sent) and is kept
    out of the OpenAPI document, which states the field as not nullable.
    """
    return Field(default=None, json_schema_extra=_no_default, **constraints)


# Deeper JSON is refused: no real event needs it, and deep nesting exhausts the recursion
# limits of the JSON and serialisation code that reads a stored message back.
MAX_PAYLOAD_DEPTH = 64


def _depth_exceeds(value: object, limit: int) -> bool:
    """True if ``value`` nests objects or arrays more than ``limit`` levels deep (iteratively)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children: Any = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def payload_json(payload: dict[str, Any]) -> str:
    """The payload as the exact JSON text stored, signed and sent; ValueError if it cannot be.

    Everything that could fail later, when the text is written or read back, is refused here,
    so one request's content can only fail that request.
    """
    if _depth_exceeds(payload, MAX_PAYLOAD_DEPTH):
        raise ValueError(f"payload nests deeper than {MAX_PAYLOAD_DEPTH} levels")
    try:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise ValueError("payload holds NaN or Infinity, which JSON cannot carry") from exc
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("payload holds a lone UTF-16 surrogate, which is not valid Unicode text") from exc
    return text
