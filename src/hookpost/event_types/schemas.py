from typing import Annotated, Any, Self

from jsonschema import SchemaError
from jsonschema.validators import validator_for
from pydantic import AfterValidator, Field, StrictBool, model_validator

from hookpost.kit.schemas import Schema, UtcDatetime
from hookpost.kit.validation import Name, omittable

Description = Annotated[str, Field(max_length=4096)]
FeatureFlags = Annotated[list[Name], Field(max_length=50)]
GroupName = Name


def valid_schemas(schemas: dict[str, Any]) -> dict[str, Any]:
    """Versions are whole numbers ("1", "2", ...); each value must be a JSON Schema."""
    for version, schema in schemas.items():
        if not version.isdigit() or int(version) < 1:
            raise ValueError(f"version {version!r} is not a whole number from 1")
        if not isinstance(schema, dict):
            raise ValueError(f"version {version}: a JSON Schema is an object")
        try:
            validator_for(schema).check_schema(schema)
        except SchemaError as error:
            where = "/".join(str(part) for part in error.path) or "(root)"
            raise ValueError(f"version {version} is not a valid JSON Schema at {where}: {error.message}") from None
    return schemas


def newest_schema(schemas: dict[str, Any] | None) -> dict[str, Any] | None:
    """The schema of the highest version, or None without schemas."""
    if not schemas:
        return None
    schema: dict[str, Any] = schemas[max(schemas, key=int)]
    return schema


VersionedSchemas = Annotated[
    dict[str, Any],
    Field(description='JSON Schema per version: {"1": {...}}; "examples" in a schema feed send-example'),
    AfterValidator(valid_schemas),
]


class _OneFeatureFlag(Schema):
    """Svix's older single ``featureFlag``, read as a one-item ``featureFlags``."""

    feature_flags: FeatureFlags | None = None
    feature_flag: Name | None = Field(default=None, description="Deprecated: use featureFlags")

    @model_validator(mode="after")
    def _as_feature_flags(self) -> Self:
        if self.feature_flag is None:
            return self
        flags = self.feature_flags
        if flags is not None and flags != [self.feature_flag]:
            raise ValueError("send featureFlags or featureFlag, not both")
        self.feature_flags = [self.feature_flag]
        return self


class EventTypeUpdate(_OneFeatureFlag):
    """PUT: every field but the name."""

    description: Description
    archived: StrictBool = False
    deprecated: StrictBool = False
    schemas: VersionedSchemas | None = None
    group_name: GroupName | None = None


class EventTypeIn(EventTypeUpdate):
    name: Name


class EventTypePatch(_OneFeatureFlag):
    """Only the fields sent change; ``null`` clears ``schemas`` and ``groupName``."""

    description: Description = omittable()
    archived: StrictBool = omittable()
    deprecated: StrictBool = omittable()
    schemas: VersionedSchemas | None = None
    group_name: GroupName | None = None


class EventTypeOut(Schema):
    name: str
    description: str
    archived: bool
    deprecated: bool
    schemas: dict[str, Any] | None
    group_name: str | None
    feature_flags: list[str] | None
    feature_flag: str | None = Field(default=None, description="Deprecated: the first of featureFlags")
    created_at: UtcDatetime
    updated_at: UtcDatetime


class EventTypeFromOpenApi(Schema):
    name: str
    description: str
    schemas: dict[str, Any] | None
    deprecated: bool
    group_name: str | None = None
    feature_flags: list[str] | None = None


class EventTypeImportOpenApiIn(Schema):
    spec: dict[str, Any] | None = Field(default=None, description="The OpenAPI document, as JSON")
    spec_raw: str | None = Field(default=None, max_length=1024 * 1024, description="... or as YAML or JSON text")
    dry_run: StrictBool = Field(default=False, description="Only say what would change")
    replace_all: StrictBool = Field(default=False, description="Archive every event type the document does not name")


class EventTypeImportOpenApiOutData(Schema):
    modified: list[str]
    # Svix spells this one field in snake_case.
    to_modify: list[EventTypeFromOpenApi] | None = Field(default=None, alias="to_modify")


class EventTypeImportOpenApiOut(Schema):
    data: EventTypeImportOpenApiOutData
