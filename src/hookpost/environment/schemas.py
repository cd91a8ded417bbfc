from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, field_validator

from hookpost.event_types.schemas import EventTypeIn, EventTypeOut
from hookpost.kit.schemas import Schema, UtcDatetime

ENVIRONMENT_VERSION = 1


class EnvironmentOut(Schema):
    version: int = ENVIRONMENT_VERSION
    created_at: UtcDatetime
    event_types: list[EventTypeOut] = Field(description="Every event type, archived ones included")
    settings: dict[str, Any] = Field(
        description="Svix's environment settings Hookpost has an equivalent for, as this server runs them"
    )
    connectors: list[dict[str, Any]] = Field(description="Always empty: Hookpost has no transformation templates")


class EnvironmentIn(Schema):
    event_types: list[EventTypeIn] = Field(default_factory=list, description="Created, or updated by name")
    settings: dict[str, Any] | None = Field(
        default=None,
        description="Read and not applied: Hookpost's settings are its HOOKPOST_* environment (docs/integrations.md)",
    )
    connectors: list[dict[str, Any]] | None = Field(
        default=None,
        # Newer Svix exports name them transformationTemplates.
        validation_alias=AliasChoices("connectors", "transformationTemplates"),
        description="Refused unless empty: Hookpost has no transformation templates",
        json_schema_extra={"maxItems": 0},
    )

    @field_validator("connectors")
    @classmethod
    def _no_connectors(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if value:
            raise ValueError("not supported by Hookpost: it has no transformation templates (connectors)")
        return value
