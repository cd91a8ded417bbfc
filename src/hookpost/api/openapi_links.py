"""OpenAPI links from each create operation to the operations on what it created.

``POST /app`` answers with the new application's ``id``; ``GET /app/{app_id}`` (and PUT,
PATCH, DELETE) take it. Stated as links, a client generator or a stateful fuzzer can follow
them. Derived from the paths, so a new router gets its links without writing any.
"""

from __future__ import annotations

import re
from typing import Any

_PARAMETER = re.compile(r"\{([^}]+)\}")
_CREATED = ("201", "202")


def _pointer(path: str) -> str:
    return path.replace("~", "~0").replace("/", "~1")


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
            parameters[match.group(1)] = "$response.body#/id"
            links = {
                f"{method.upper()} {child}": {
                    "operationRef": f"#/paths/{_pointer(child)}/{method}",
                    "parameters": parameters,
                }
                for method in child_operations
            }
            for status in _CREATED:
                response = create.get("responses", {}).get(status)
                if response is not None:
                    response.setdefault("links", {}).update(links)
    return schema
