"""Destinations as Svix's API takes and answers them: one shape per type, told apart by ``type``.

Each type's ``config`` is checked against that type's fields (camelCase, as Svix's clients
send them); an unknown field or type is refused, never silently kept.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StrictBool, StringConstraints, model_validator

from hookpost.destinations.kinds import DestinationType, Status, StatusIn
from hookpost.endpoints.schemas import EVENT_TYPES_ALIASES, EndpointUrl, Headers, Secret
from hookpost.kit.schemas import Schema, UtcDatetime
from hookpost.kit.urls import ShownUrl
from hookpost.kit.validation import Metadata, Name, Uid, omittable
from hookpost.messages.schemas import MessageOut


class _Config(Schema):
    model_config = ConfigDict(extra="forbid")


ShortText = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^\x00]*$")]
Region = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,64}$")]
# A table, optionally schema-qualified: each part an unquoted SQL identifier.
TableName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?$")
]
AmqpUri = Annotated[str, StringConstraints(pattern=r"^amqps?://[^\s]+$", max_length=2083)]
PostgresUrl = Annotated[str, StringConstraints(pattern=r"^postgres(ql)?://[^\s]+$", max_length=2083)]


class PollingEndpointConfig(_Config):
    """A polling endpoint has nothing to configure."""


class FifoEndpointConfig(_Config):
    url: EndpointUrl
    headers: Headers = Field(default_factory=dict)
    key: Secret | None = Field(default=None, description="The signing secret; generated when omitted")


class FifoEndpointConfigPatch(_Config):
    url: EndpointUrl = omittable()
    headers: Headers = Field(default_factory=dict)  # applied only when sent


class RabbitMqConfig(_Config):
    uri: AmqpUri = Field(description="amqp:// or amqps://, the vhost percent-escaped (amqp://user:pass@host/%2F)")
    routing_key: ShortText
    mandatory: StrictBool = False


class RabbitMqConfigPatch(_Config):
    uri: AmqpUri = omittable()
    routing_key: ShortText = omittable()
    mandatory: StrictBool = omittable()


class PostgresConfig(_Config):
    url: PostgresUrl = Field(description="postgres://user@host:5432/dbname, the password in password")
    password: ShortText | None = None
    table_name: TableName
    ssl_root_cert: Annotated[str, StringConstraints(max_length=65536, pattern=r"^[^\x00]*$")] | None = None


class PostgresConfigPatch(_Config):
    url: PostgresUrl = omittable()
    password: ShortText | None = None
    table_name: TableName = omittable()
    ssl_root_cert: Annotated[str, StringConstraints(max_length=65536, pattern=r"^[^\x00]*$")] | None = None


class _AwsCredentials(_Config):
    region: Region
    access_key_id: ShortText | None = None
    secret_access_key: ShortText | None = None
    role_arn: ShortText | None = None
    external_id: ShortText | None = None
    endpoint_url: EndpointUrl | None = None

    @model_validator(mode="after")
    def _credentials(self) -> _AwsCredentials:
        keys = (self.access_key_id is None, self.secret_access_key is None)
        if keys == (True, True) and self.role_arn is None:
            raise ValueError("accessKeyId and secretAccessKey, or roleArn, are required")
        if keys[0] != keys[1]:
            raise ValueError("accessKeyId and secretAccessKey go together")
        if self.external_id is not None and self.role_arn is None:
            raise ValueError("externalId goes with roleArn")
        return self


class SqsConfig(_AwsCredentials):
    queue_url: EndpointUrl


class S3Config(_AwsCredentials):
    bucket: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")]


class _AwsPatch(_Config):
    region: Region = omittable()
    access_key_id: ShortText | None = None
    secret_access_key: ShortText | None = None
    role_arn: ShortText | None = None
    external_id: ShortText | None = None
    endpoint_url: EndpointUrl | None = None


class SqsConfigPatch(_AwsPatch):
    queue_url: EndpointUrl = omittable()


class S3ConfigPatch(_AwsPatch):
    bucket: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")] = omittable()


BatchSize = Annotated[int, Field(ge=1, le=1000, description="Messages per request (fifoEndpoint)")]
MaxWaitSecs = Annotated[int, Field(ge=0, le=3600, description="Longest wait for a batch to fill, in seconds")]


class _DestinationFields(Schema):
    """The fields every type has (PUT and POST)."""

    uid: Uid | None = None
    status: StatusIn = StatusIn.ENABLED
    batch_size: BatchSize = 100
    max_wait_secs: MaxWaitSecs = 1
    event_types: list[Name] | None = Field(
        default=None, validation_alias=EVENT_TYPES_ALIASES, description="Only these event types; empty or null = all"
    )
    channels: list[Name] | None = Field(default=None, description="Only messages on one of these; empty or null = all")
    metadata: Metadata = Field(default_factory=dict)


class PollingEndpointIn(_DestinationFields):
    type: Literal[DestinationType.POLLING_ENDPOINT]
    config: PollingEndpointConfig = Field(default_factory=PollingEndpointConfig)


class FifoEndpointIn(_DestinationFields):
    type: Literal[DestinationType.FIFO_ENDPOINT]
    config: FifoEndpointConfig


class RabbitMqIn(_DestinationFields):
    type: Literal[DestinationType.RABBIT_MQ]
    config: RabbitMqConfig


class PostgresIn(_DestinationFields):
    type: Literal[DestinationType.POSTGRES]
    config: PostgresConfig


class SqsIn(_DestinationFields):
    type: Literal[DestinationType.SQS]
    config: SqsConfig


class AmazonS3In(_DestinationFields):
    type: Literal[DestinationType.AMAZON_S3]
    config: S3Config


DestinationIn = Annotated[
    PollingEndpointIn | FifoEndpointIn | RabbitMqIn | PostgresIn | SqsIn | AmazonS3In, Field(discriminator="type")
]


class _DestinationPatchFields(Schema):
    """Only the fields sent change; ``null`` clears the nullable ones. ``type`` must be the
    destination's own (Svix's clients always send it)."""

    uid: Uid | None = None
    status: StatusIn = omittable()
    batch_size: BatchSize = omittable()
    max_wait_secs: MaxWaitSecs = omittable()
    event_types: list[Name] | None = Field(default=None, validation_alias=EVENT_TYPES_ALIASES)
    channels: list[Name] | None = None
    metadata: Metadata = omittable()


class PollingEndpointPatch(_DestinationPatchFields):
    type: Literal[DestinationType.POLLING_ENDPOINT]
    config: PollingEndpointConfig = omittable()


class FifoEndpointPatch(_DestinationPatchFields):
    type: Literal[DestinationType.FIFO_ENDPOINT]
    config: FifoEndpointConfigPatch = omittable()


class RabbitMqPatch(_DestinationPatchFields):
    type: Literal[DestinationType.RABBIT_MQ]
    config: RabbitMqConfigPatch = omittable()


class PostgresPatch(_DestinationPatchFields):
    type: Literal[DestinationType.POSTGRES]
    config: PostgresConfigPatch = omittable()


class SqsPatch(_DestinationPatchFields):
    type: Literal[DestinationType.SQS]
    config: SqsConfigPatch = omittable()


class AmazonS3Patch(_DestinationPatchFields):
    type: Literal[DestinationType.AMAZON_S3]
    config: S3ConfigPatch = omittable()


DestinationPatch = Annotated[
    PollingEndpointPatch | FifoEndpointPatch | RabbitMqPatch | PostgresPatch | SqsPatch | AmazonS3Patch,
    Field(discriminator="type"),
]


class DestinationOut(Schema):
    id: str
    uid: str | None
    type: DestinationType
    status: Status
    failure_reason: str | None = Field(description="Why it is not delivering: its failing batch")
    current_iterator: str = Field(description="Where the destination reads from in the application's messages")
    next_retry_at: UtcDatetime | None = None
    batch_size: int
    max_wait_secs: int
    event_types: list[str] | None
    channels: list[str] | None
    metadata: dict[str, str]
    config: dict[str, Any] = Field(description="The type's configuration, without its passwords and secret keys")
    created_at: UtcDatetime
    updated_at: UtcDatetime


class DestinationSecretRotateOut(Schema):
    key: str


class PollingEndpointOut(Schema):
    """A page of a polling endpoint: pass ``iterator`` back for the next one."""

    data: list[MessageOut]
    iterator: str
    done: bool = Field(description="No more messages now (poll again later with the same iterator)")


class ConsumerSeekIn(Schema):
    after: UtcDatetime = Field(description="The consumer reads next the messages accepted from this time on")


class ConsumerSeekOut(Schema):
    iterator: str


class DestinationAttemptOut(Schema):
    """One attempt to send a batch to a destination (its messages: ``firstMsgId`` to ``lastMsgId``)."""

    id: str
    destination_id: str
    first_msg_id: str
    last_msg_id: str
    message_count: int
    url: ShownUrl
    status: int = Field(description="0: delivered; 2: failed (the batch is retried, or the destination disabled)")
    response_status_code: int
    response: str
    response_duration_ms: int
    error: str | None
    timestamp: UtcDatetime = Field(validation_alias="created_at")
