from pydantic import Field, field_validator

from hookpost.applications.schemas import ApplicationIn
from hookpost.kit.schemas import Schema
from hookpost.kit.validation import Name

HOUR = 3600
WEEK = 7 * 24 * HOUR


class AppPortalAccessIn(Schema):
    application: ApplicationIn | None = Field(
        default=None, description="Create the application with these fields if it does not exist yet"
    )
    read_only: bool = Field(default=False, description="The token can read, never change anything")
    expiry: int = Field(default=WEEK, ge=HOUR, le=WEEK, description="Seconds the token is valid (1 hour to 7 days)")
    # Svix's hosted-only fields: refused rather than ignored (README: API).
    feature_flags: list[Name] | None = Field(
        default=None, max_length=50, description="Event types behind these feature flags are visible to the token"
    )
    capabilities: list[str] | None = Field(default=None, description="Not supported: a token does all, or reads")
    session_id: str | None = Field(default=None, description="Not supported")

    @field_validator("capabilities", "session_id")
    @classmethod
    def _not_supported(cls, value: object) -> None:
        if value is not None:
            raise ValueError("not supported by Hookpost: a token may do everything in its application, or read only")


class AppPortalAccessOut(Schema):
    url: str = Field(description="The app portal, with the token after #key= (never sent to a server)")
    token: str
