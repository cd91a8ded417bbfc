"""The ``idempotency-key`` header in the OpenAPI document: the middleware honours it on every
POST, so every POST states it, and the 409 a key reused with another body answers."""

from __future__ import annotations

from typing import Any

from hookpost.idempotency.middleware import MAX_KEY_LENGTH

_HEADER = {
    "name": "idempotency-key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": MAX_KEY_LENGTH},
    "description": "A repeat with the same key and body answers with the first answer (kept 12 hours)",
}
_CONFLICT = {
    "description": "The idempotency-key was used with another body, or its first request is still running",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
}


def document_idempotency(schema: dict[str, Any]) -> dict[str, Any]:
    for operations in schema.get("paths", {}).values():
        post = operations.get("post")
        if post is None:
            continue
        parameters: list[dict[str, Any]] = post.setdefault("parameters", [])
        if not any(p.get("in") == "header" and p.get("name") == _HEADER["name"] for p in parameters):
            parameters.append(dict(_HEADER))
        post.setdefault("responses", {}).setdefault("409", _CONFLICT)
    return schema
