"""A destination's type and status as stored: plain enums, apart from the API's schemas (which
load pydantic models for endpoints, messages and signing keys), so the scheduler and the
sinks' table read them without those.
"""

from __future__ import annotations

import enum


class DestinationType(enum.StrEnum):
    POLLING_ENDPOINT = "pollingEndpoint"
    FIFO_ENDPOINT = "fifoEndpoint"
    RABBIT_MQ = "rabbitMq"
    POSTGRES = "postgres"
    SQS = "sqs"
    AMAZON_S3 = "amazonS3"


class StatusIn(enum.StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


class Status(enum.StrEnum):
    """What the destination does now (``paused`` is Svix's; Hookpost delivers to every type it stores)."""

    ENABLED = "enabled"
    PAUSED = "paused"
    DISABLED = "disabled"
    RETRYING = "retrying"
