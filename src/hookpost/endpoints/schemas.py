from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    Field,
    HttpUrl,
    StrictBool,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)

from hookpost.delivery.signing import SIGNING_KEY_PREFIX, SYMMETRIC_PREFIX, ed25519_key, shown_key
from hookpost.kit.schemas import Schema, UtcDatetime
from hookpost.kit.urls import ShownUrl
from hookpost.kit.validation import GracePeriod, Metadata, Name, Text, ThrottleRate, Uid, omittable

# Headers Hookpost sets itself; an endpoint may not override them.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "user-agent", "connection", "transfer-encoding"}
)
RESERVED_HEADER_PREFIXES = ("webhook-", "svix-")
# Shown by name only when headers are read back.
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})

# Svix's clients before 2.0 call an endpoint's eventTypes filterTypes; both are read.
EVENT_TYPES_ALIASES = AliasChoices("eventTypes", "filterTypes", "event_types")


def _with_prefix(value: str) -> str:
    """Svix takes an HMAC key with or without its ``whsec_`` prefix (Hookpost stores it with one),
    and an ed25519 one with its ``whsk_`` prefix, checked here to be a key."""
    if value.startswith(SIGNING_KEY_PREFIX):
        ed25519_key(value)
        return value
    return value if value.startswith(SYMMETRIC_PREFIX) else SYMMETRIC_PREFIX + value


Secret = Annotated[
    str, StringConstraints(pattern=r"^(whsec_|whsk_)?[A-Za-z0-9+/=]{32,100}$"), AfterValidator(_with_prefix)
]


_HTTP_URL = TypeAdapter(HttpUrl)


def _http_url(value: str) -> str:
    return str(_HTTP_URL.validate_python(value))


# Published as what it is, so a client (or a fuzzer) knows what the API takes.
EndpointUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2083),
    AfterValidator(_http_url),
    WithJsonSchema(
        {
            "type": "string",
            "format": "uri",
            "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://",
            "minLength": 1,
            "maxLength": 2083,
            "description": "An http or https URL",
        }
    ),
]


def _header_name_allowed(headers: dict[str, str]) -> dict[str, str]:
    for name in headers:
        lowered = name.lower()
        if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_HEADER_PREFIXES):
            raise ValueError(f"header {name!r} is set by Hookpost and cannot be overridden")
    return headers


# RFC 9110's token for a name; a value of visible ASCII, spaces and tabs only: anything else
# (non-ASCII, line breaks, NUL) cannot be put on the wire and would fail the delivery.
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"
HeaderName = Annotated[str, StringConstraints(pattern=HEADER_NAME_PATTERN, min_length=1, max_length=256)]
HeaderValue = Annotated[str, StringConstraints(pattern=r"^[\t\x20-\x7e]*$", max_length=4096)]
Headers = Annotated[
    dict[HeaderName, HeaderValue],
    Field(
        max_length=64,
        description="Header names are HTTP tokens, not ones Hookpost sets (webhook-*, svix-*, content-type, ...)",
        json_schema_extra={
            "propertyNames": {"pattern": HEADER_NAME_PATTERN, "maxLength": 256},
            "additionalProperties": False,
        },
    ),
    AfterValidator(_header_name_allowed),
]


class EndpointUpdate(Schema):
    """The fields of PUT, and of POST apart from ``secret`` and ``headers``."""

    url: EndpointUrl
    description: Text = Field(default="", max_length=4096)
    uid: Uid | None = None
    event_types: list[Name] | None = Field(
        default=None, validation_alias=EVENT_TYPES_ALIASES, description="Only these event types; empty or null = all"
    )
    channels: list[Name] | None = None
    disabled: StrictBool = False
    throttle_rate: ThrottleRate | None = None
    metadata: Metadata = Field(default_factory=dict)


class EndpointIn(EndpointUpdate):
    secret: Secret | None = Field(
        default=None,
        description=(
            "An HMAC key (base64, with or without whsec_: signs v1) or an ed25519 private key (whsk_ and "
            "base64: signs v1a); a whsec_ one is generated when omitted"
        ),
    )
    headers: Headers = Field(default_factory=dict)


class EndpointPatch(Schema):
    """Only the fields sent change; ``null`` clears the nullable ones."""

    url: EndpointUrl = omittable()
    description: Text = omittable(max_length=4096)
    uid: Uid | None = None
    event_types: list[Name] | None = Field(default=None, validation_alias=EVENT_TYPES_ALIASES)
    channels: list[Name] | None = None
    disabled: StrictBool = omittable()
    throttle_rate: ThrottleRate | None = None
    metadata: Metadata = omittable()


class EndpointOut(Schema):
    id: str
    uid: str | None
    url: ShownUrl
    description: str
    event_types: list[str] | None
    filter_types: list[str] | None = Field(
        default=None, validation_alias="event_types", description="eventTypes again, under its older Svix name"
    )
    channels: list[str] | None
    disabled: bool
    disabled_reason: str | None = Field(description="Why Hookpost disabled it (410 Gone, failing too long)")
    throttle_rate: int | None
    metadata: dict[str, str] = Field(validation_alias="metadata_")
    created_at: UtcDatetime
    updated_at: UtcDatetime


class EndpointSecretOut(Schema):
    key: str = Field(description="A whsec_ secret as it is; of a whsk_ (ed25519) one, its whpk_ public key only")

    @classmethod
    def of(cls, secret: str) -> EndpointSecretOut:
        return cls(key=shown_key(secret))


class EndpointSecretRotateIn(Schema):
    key: Secret | None = Field(default=None, description="The new secret; generated when omitted")
    grace_period_seconds: GracePeriod | None = Field(
        default=None, description="How long the old secret keeps signing (default 24 h)"
    )


class RecoverIn(Schema):
    since: UtcDatetime = Field(description="Re-send failed messages created from this time")
    until: UtcDatetime | None = Field(default=None, description="... up to this time (default: now); not before since")

    @model_validator(mode="after")
    def _window_forwards(self) -> RecoverIn:
        if self.until is not None and self.until < self.since:
            raise ValueError("until is before since")
        return self


class EndpointHeadersIn(Schema):
    headers: Headers


class EndpointHeadersPatchIn(Schema):
    headers: Headers = Field(default_factory=dict)
    delete_headers: list[str] = Field(default_factory=list)


class EndpointHeadersOut(Schema):
    headers: dict[str, str]
    sensitive: list[str]


class EventExampleIn(Schema):
    event_type: Name = Field(description="The event type whose schema example to send")
    example_index: int = Field(default=0, ge=0, description="Which of the schema's examples (default: the first)")
    payload: dict[str, Any] | None = Field(default=None, description="Send this instead of an example")


class EndpointStats(Schema):
    """The endpoint's deliveries by state (messages created in the window)."""

    success: int
    pending: int
    sending: int
    fail: int
    canceled: int
