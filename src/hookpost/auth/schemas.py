from typing import Self

from pydantic import Field, field_validator, model_validator

from hookpost.applications.schemas import ApplicationIn
from hookpost.auth.capabilities import UNSUPPORTED, Capability, granted
from hookpost.kit.schemas import Schema
from hookpost.kit.validation import Name

HOUR = 3600
WEEK = 7 * 24 * HOUR


class AppPortalAccessIn(Schema):
    application: ApplicationIn | None = Field(
        default=None, description="Create the application with these fields if it does not exist yet"
    )
    read_only: bool = Field(
        default=False, description="The token can read, never change anything: `capabilities` `[ViewBase]`"
    )
    expiry: int = Field(default=WEEK, ge=HOUR, le=WEEK, description="Seconds the token is valid (1 hour to 7 days)")
    feature_flags: list[Name] | None = Field(
        default=None, max_length=50, description="Event types behind these feature flags are visible to the token"
    )
    capabilities: list[str] | None = Field(
        default=None,
        max_length=10,
        description=(
            "What the token may do: ViewBase (read all but endpoint secrets; always granted), ViewEndpointSecret, "
            "ManageEndpointSecret (view and rotate secrets), ManageEndpoint (create, change and delete endpoints, "
            "secrets included), CreateAttempts (send examples, resend, recover and replay). Without it (and without "
            "readOnly), all of them. ManageTransformations is refused: Hookpost has no transformations"
        ),
    )
    # Svix's hosted-only field: refused rather than ignored (README: API).
    session_id: str | None = Field(default=None, description="Not supported")

    @field_validator("capabilities")
    @classmethod
    def _known_capabilities(cls, names: list[str] | None) -> list[str] | None:
        known = {capability.value for capability in Capability}
        for name in names or ():
            if name in UNSUPPORTED:
                raise ValueError(f"{name} is not supported: {UNSUPPORTED[name]}")
            if name not in known:
                raise ValueError(f"unknown capability {name!r}: one of {', '.join(sorted(known))}")
        return names

    @field_validator("session_id")
    @classmethod
    def _not_supported(cls, value: object) -> None:
        if value is not None:
            raise ValueError("not supported by Hookpost: expire-all ends every token of an application")

    @model_validator(mode="after")
    def _read_only_or_capabilities(self) -> Self:
        if self.read_only and set(self.capabilities or ()) - {Capability.VIEW_BASE}:
            raise ValueError("readOnly grants ViewBase alone: send readOnly or capabilities, not both")
        return self

    def granted(self) -> frozenset[Capability]:
        return granted(self.capabilities, self.read_only)


class AppPortalAccessOut(Schema):
    url: str = Field(description="The app portal, with the token after #key= (never sent to a server)")
    token: str


class ApplicationTokenExpireIn(Schema):
    expiry: int = Field(
        default=0, ge=0, le=WEEK, description="Seconds until the tokens expire (0, the default: at once; up to 7 days)"
    )
    session_ids: list[str] | None = Field(default=None, description="Not supported")

    @field_validator("session_ids")
    @classmethod
    def _not_supported(cls, value: list[str] | None) -> None:
        if value:
            raise ValueError("not supported by Hookpost: tokens have no session ids, expire-all ends them all")
