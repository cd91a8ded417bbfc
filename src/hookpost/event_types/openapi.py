"""Event types to and from an OpenAPI 3.1 document's ``webhooks``, as Svix imports them.

Each webhook becomes an event type of that name: its POST's summary or description, its
JSON request body schema as version 1 (``$ref``s into ``components`` inlined, examples kept),
``deprecated``, and Svix's ``x-svix-group-name`` / ``x-svix-feature-flags`` extensions.
"""

from __future__ import annotations

from typing import Any

import yaml

from hookpost.event_types.schemas import EventTypeFromOpenApi, newest_schema
from hookpost.storage.models import EventType

_MAX_REF_DEPTH = 32
# Every node of every webhook's body, as built with its $refs inlined: the total work of an
# import, ample for real catalogues (a few thousand nodes per event type).
MAX_RESOLVED_NODES = 100_000


class SpecError(ValueError):
    """The document is not something we can read event types from."""


def parse_spec(spec: dict[str, Any] | None, spec_raw: str | None) -> dict[str, Any]:
    if (spec is None) == (spec_raw is None):
        raise SpecError("send exactly one of spec and specRaw")
    if spec is not None:
        return spec
    assert spec_raw is not None
    try:
        # JSON is YAML, so one parser reads both; safe_load builds plain data only.
        parsed = yaml.safe_load(spec_raw)
    except yaml.YAMLError as error:
        raise SpecError(f"specRaw is neither JSON nor YAML: {error}") from None
    if not isinstance(parsed, dict):
        raise SpecError("specRaw is not an OpenAPI document (an object)")
    return parsed


class _Resolver:
    """Inlines a document's local ``$ref``s, counting every node it builds: a depth cap alone
    lets a chain of schemas that each refer twice to the next double at every level."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.nodes = 0

    def resolve(self, node: Any, depth: int = 0) -> Any:
        """``node`` with every local ``$ref`` replaced by what it points at."""
        self.nodes += 1
        if self.nodes > MAX_RESOLVED_NODES:
            raise SpecError(f"the webhooks' schemas, with their $refs inlined, exceed {MAX_RESOLVED_NODES} nodes")
        if depth > _MAX_REF_DEPTH:
            raise SpecError("$ref nesting too deep (a recursive schema?)")
        if isinstance(node, list):
            return [self.resolve(item, depth) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#/"):
                raise SpecError(f"only local $refs are supported, not {ref}")
            target: Any = self.spec
            for escaped in ref[2:].split("/"):
                part = escaped.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    raise SpecError(f"$ref {ref} points at nothing")
                target = target[part]
            return self.resolve(target, depth + 1)
        return {key: self.resolve(value, depth) for key, value in node.items()}


def event_types_from_spec(spec: dict[str, Any]) -> list[EventTypeFromOpenApi]:
    webhooks = spec.get("webhooks")
    if not isinstance(webhooks, dict):
        raise SpecError("the document has no webhooks (OpenAPI 3.1 `webhooks`)")
    found: list[EventTypeFromOpenApi] = []
    resolver = _Resolver(spec)
    for name, path_item in webhooks.items():
        operation = path_item.get("post") if isinstance(path_item, dict) else None
        if not isinstance(operation, dict):
            continue  # Svix reads POST webhooks only
        body = resolver.resolve(operation.get("requestBody", {}))
        content = body.get("content", {}).get("application/json", {}) if isinstance(body, dict) else {}
        schema = content.get("schema") if isinstance(content, dict) else None
        if isinstance(schema, dict):
            schema = dict(schema)
            example = content.get("example")
            if example is not None and "examples" not in schema:
                schema["examples"] = [example]
        flags = operation.get("x-svix-feature-flags")
        found.append(
            EventTypeFromOpenApi(
                name=str(name),
                description=str(operation.get("description") or operation.get("summary") or ""),
                schemas={"1": schema} if isinstance(schema, dict) else None,
                deprecated=bool(operation.get("deprecated", False)),
                group_name=operation.get("x-svix-group-name"),
                feature_flags=[str(flag) for flag in flags] if isinstance(flags, list) else None,
            )
        )
    return found


def spec_from_event_types(event_types: list[EventType], title: str, version: str) -> dict[str, Any]:
    """An OpenAPI 3.1 document with one webhook per event type, its newest schema as the body."""
    webhooks: dict[str, Any] = {}
    for event_type in event_types:
        operation: dict[str, Any] = {"description": event_type.description, "operationId": event_type.name}
        newest = newest_schema(event_type.schemas)
        if newest is not None:
            operation["requestBody"] = {"content": {"application/json": {"schema": newest}}}
        operation["responses"] = {"2XX": {"description": "Return any 2XX status to acknowledge the webhook"}}
        if event_type.deprecated:
            operation["deprecated"] = True
        if event_type.group_name:
            operation["x-svix-group-name"] = event_type.group_name
        if event_type.feature_flags:
            operation["x-svix-feature-flags"] = event_type.feature_flags
        webhooks[event_type.name] = {"post": operation}
    return {"openapi": "3.1.0", "info": {"title": title, "version": version}, "paths": {}, "webhooks": webhooks}
