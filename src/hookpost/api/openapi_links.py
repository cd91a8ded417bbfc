"""OpenAPI links from each create operation to the operations on what it created.

``POST /app`` answers with the new application's ``id``; ``GET /app/{app_id}`` (and PUT,
PATCH, DELETE) take it. Stated as links, a client generator or a stateful fuzzer can follow
them. Derived from the paths, so a new router gets its links without writing any.

The value comes from the created thing's key as its answer names it: ``id``, or for things
keyed otherwise the field the path parameter names (``{event_type_name}`` takes ``name``).
An answer with neither gets no link rather than a link to a field that is not there.
"""

from __future__ import annotations

import re
from typing import Any

_PARAMETER = re.compile(r"\{([^}]+)\}")
_CREATED = ("201", "202")


def _pointer(path: str) -> str:
    return path.replace("~", "~0").replace("/", "~1")


def _response_fields(schema: dict[str, Any], response: dict[str, Any]) -> set[str]:
    """The top-level fields of a JSON answer's schema (through its ``$ref``)."""
    body: dict[str, Any] = response.get("content", {}).get("application/json", {}).get("schema", {})
    reference = body.get("$ref", "")
    if reference.startswith("#/components/schemas/"):
        body = schema.get("components", {}).get("schemas", {}).get(reference.rpartition("/")[2], {})
    return set(body.get("properties", {}))


def _key_field(parameter: str, fields: set[str]) -> str | None:
    """The answer's field a path parameter takes: ``id``, else its own last word (``name``)."""
    for candidate in ("id", parameter.rpartition("_")[2]):
        if candidate in fields:
            return candidate
    return None


def add_links(schema: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = schema.get("paths", {})
    for path, operations in paths.items():
        create = operations.get("post")
        if create is None:
            continue
        for child, child_operations in paths.items():
            # The created thing's own path, and those under it that need no other id.
            match = re.fullmatch(re.escape(path) + r"/\{([^}/]+)\}(/[^{}]+)?", child)
            if match is None:
                continue
            parameters = {name: f"$request.path.{name}" for name in _PARAMETER.findall(path)}
            for status in _CREATED:
                response = create.get("responses", {}).get(status)
                key = None if response is None else _key_field(match.group(1), _response_fields(schema, response))
                if response is None or key is None:
                    continue
                links = {
                    f"{method.upper()} {child}": {
                        "operationRef": f"#/paths/{_pointer(child)}/{method}",
                        "parameters": parameters | {match.group(1): f"$response.body#/{key}"},
                    }
                    for method in child_operations
                }
                response.setdefault("links", {}).update(links)
    return schema
