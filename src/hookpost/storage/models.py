"""The tables. The database is the source of truth for every delivery."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    ColumnElement,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    cast,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hookpost.kit.time import utcnow
from hookpost.storage.encrypted import EncryptedBytes, EncryptedJSON, EncryptedText


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class MessageStatus(enum.IntEnum):
    """Svix's numbering, shared by deliveries and attempts."""

    SUCCESS = 0
    PENDING = 1
    FAIL = 2
    SENDING = 3
    CANCELED = 4


class TriggerType(enum.IntEnum):
    SCHEDULED = 0
    MANUAL = 1


class Application(Base):
    __tablename__ = "application"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    uid: Mapped[str | None] = mapped_column(String(256), unique=True)
    name: Mapped[str] = mapped_column(String(256))
    throttle_rate: Mapped[int | None]
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Endpoint(Base):
    __tablename__ = "endpoint"
    __table_args__ = (UniqueConstraint("app_id", "uid"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Read by application through (app_id, uid), the unique constraint's index.
    app_id: Mapped[str] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"))
    uid: Mapped[str | None] = mapped_column(String(256))
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    event_types: Mapped[list[str] | None] = mapped_column(JSON)
    channels: Mapped[list[str] | None] = mapped_column(JSON)
    disabled: Mapped[bool] = mapped_column(default=False)
    # Why Hookpost disabled it (410 Gone, failing too long); None when a user did, or it is enabled.
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # Start of the current run of failed attempts; None after a success.
    failing_since: Mapped[datetime | None]
    throttle_rate: Mapped[int | None]
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # Encrypted at rest (HOOKPOST_SECRET_KEY): a dump of the database must not hand out the
    # keys and credentials that receivers trust.
    headers: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON, default=dict)
    secret: Mapped[str] = mapped_column(EncryptedText)
    # ``user:password`` of the URL, which keeps them masked (endpoints/credentials.py).
    url_credentials: Mapped[str | None] = mapped_column(EncryptedText)
    # After a rotation the old secret keeps signing alongside the new one until then.
    previous_secret: Mapped[str | None] = mapped_column(EncryptedText)
    previous_secret_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Destination(Base):
    """Where an application's messages go other than an endpoint: a polling endpoint, a FIFO
    endpoint, a queue or a store (Svix's destinations)."""

    __tablename__ = "destination"
    __table_args__ = (UniqueConstraint("app_id", "uid"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Read by application through (app_id, uid), the unique constraint's index.
    app_id: Mapped[str] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"))
    uid: Mapped[str | None] = mapped_column(String(256))
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="enabled")  # enabled or disabled, as asked
    batch_size: Mapped[int]
    max_wait_secs: Mapped[int]
    event_types: Mapped[list[str] | None] = mapped_column(JSON)
    channels: Mapped[list[str] | None] = mapped_column(JSON)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # The type's whole configuration, encrypted at rest: URLs may carry user names and
    # passwords, and the rest holds keys and credentials.
    config: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON, default=dict)
    # The signing secret of a fifoEndpoint (None for the other types), and the one before a rotation.
    secret: Mapped[str | None] = mapped_column(EncryptedText)
    previous_secret: Mapped[str | None] = mapped_column(EncryptedText)
    previous_secret_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PollerConsumer(Base):
    """A named consumer of a polling endpoint: where it is in the application's messages."""

    __tablename__ = "poller_consumer"

    destination_id: Mapped[str] = mapped_column(ForeignKey("destination.id", ondelete="CASCADE"), primary_key=True)
    consumer_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    position: Mapped[str] = mapped_column(String(40))  # a message id bound: it reads the messages after it
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class FifoLease(Base):
    """A fifoEndpoint's place in its application's messages and the lease that makes one worker
    its only sender: a batch goes out only while its holder's lease runs, and the next batch
    only once the one before it has succeeded (delivery/fifo.py)."""

    __tablename__ = "fifo_lease"

    destination_id: Mapped[str] = mapped_column(ForeignKey("destination.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[str] = mapped_column(String(40))  # a message id bound: everything up to it is delivered
    lease_until: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]  # not before then: a failed batch's retry
    attempt_count: Mapped[int] = mapped_column(default=0)  # failed attempts of the current batch
    # The batch being sent (its first and last message ids), kept until it succeeds so that a
    # retry, or another worker after a crash, sends exactly the same messages again.
    batch_first: Mapped[str | None] = mapped_column(String(40))
    batch_last: Mapped[str | None] = mapped_column(String(40))
    last_error: Mapped[str | None] = mapped_column(Text)  # why the current batch failed last; None once delivered
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DestinationAttempt(Base):
    """One attempt to send a batch to a destination (a fifoEndpoint): what went and what came back."""

    __tablename__ = "destination_attempt"
    __table_args__ = (Index("ix_destination_attempt_destination", "destination_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    destination_id: Mapped[str] = mapped_column(ForeignKey("destination.id", ondelete="CASCADE"))
    app_id: Mapped[str] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"), index=True)
    first_msg_id: Mapped[str] = mapped_column(String(40))
    last_msg_id: Mapped[str] = mapped_column(String(40))
    message_count: Mapped[int]
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)  # MessageStatus: SUCCESS or FAIL
    response_status_code: Mapped[int] = mapped_column(default=0)
    response: Mapped[str] = mapped_column(Text, default="")
    response_duration_ms: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    __tablename__ = "message"
    __table_args__ = (
        # On PostgreSQL these two are unique within each week's partition (storage/partitions.py).
        UniqueConstraint("app_id", "event_id"),
        UniqueConstraint("app_id", "idempotency_key"),
        # The application's message list, newest first (ids begin with their time), and the
        # same filtered by event type: each walks its index in order and stops at a page.
        Index("ix_message_app", "app_id", "id"),
        Index("ix_message_app_event_type", "app_id", "event_type", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"))
    event_id: Mapped[str | None] = mapped_column(String(256))
    idempotency_key: Mapped[str | None] = mapped_column(String(256))
    event_type: Mapped[str] = mapped_column(String(256))
    # The exact JSON text that is signed and sent, so every attempt carries the same bytes.
    payload: Mapped[str] = mapped_column(Text)
    channels: Mapped[list[str] | None] = mapped_column(JSON)
    tags: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Not sent before this time (deliverAt); None: at once.
    deliver_at: Mapped[datetime | None]
    # The payload is blanked after this time (payloadRetentionPeriod/Hours); None: the default retention.
    payload_expires_at: Mapped[datetime | None]
    # The W3C traceparent of the span that stored it (tracing on, observability/tracing.py):
    # its attempts, however late, start their spans in the same trace. None when tracing is off.
    traceparent: Mapped[str | None] = mapped_column(String(55))


def _jsonb_gin(name: str, column: Mapped[Any]) -> Index:
    """A GIN index of a JSON list column as JSONB, for "holds this member" (kit/filters.py's
    ``json_list_has``); PostgreSQL only: SQLite has no such index and matches the text."""
    return Index(
        name,
        cast(column, JSONB).label(name),
        postgresql_using="gin",
        postgresql_ops={name: "jsonb_path_ops"},
        info={"postgresql_only": True},
    ).ddl_if(dialect="postgresql")


# The message lists filtered by channel or tag (Svix's ``channel`` and ``tag``) and the
# polling endpoint's channels.
_jsonb_gin("ix_message_channels", Message.channels)
_jsonb_gin("ix_message_tags", Message.tags)


# Written as a literal, not a bound parameter: a prepared statement's generic plan knows
# nothing of a parameter's value, so it could not use the partial index ``ix_delivery_due``.
_PENDING_PREDICATE = f"status = {int(MessageStatus.PENDING)}"


class Delivery(Base):
    """One message owed to one endpoint: its state, and when it is next due."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("msg_id", "endpoint_id"),
        # The due set: pending deliveries only, by due time (the claim's and the backlog's
        # index). A partial index: a delivery leaves it when it settles, so it holds the
        # backlog, not the history. Queries meant to use it say ``pending()``.
        Index(
            "ix_delivery_due",
            "next_attempt_at",
            postgresql_where=text(_PENDING_PREDICATE),
            sqlite_where=text(_PENDING_PREDICATE),
        ),
        # An endpoint's deliveries by state and age: its stats' pending set and part-hours.
        Index("ix_delivery_endpoint", "endpoint_id", "status", "created_at"),
        # The messages owed to an endpoint, newest delivery first (attempts/service.py): walked in order.
        Index("ix_delivery_endpoint_id", "endpoint_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"), index=True)
    # No foreign key to message (nor from attempt to either): on PostgreSQL the three are
    # partitioned on the message's id and a day of them is dropped at once (storage/partitions.py).
    msg_id: Mapped[str] = mapped_column(String(40))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoint.id", ondelete="CASCADE"))
    status: Mapped[int] = mapped_column(Integer, default=MessageStatus.PENDING)
    trigger_type: Mapped[int] = mapped_column(Integer, default=TriggerType.SCHEDULED)
    attempt_count: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    # Someone published a task for it; the scheduler leaves it alone until then.
    queued_until: Mapped[datetime | None]
    # A worker is sending it; if that worker dies, the lease runs out and it is due again.
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Attempt(Base):
    __tablename__ = "attempt"
    __table_args__ = (
        Index("ix_attempt_msg", "msg_id", "id"),
        Index("ix_attempt_endpoint", "endpoint_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"), index=True)
    msg_id: Mapped[str] = mapped_column(String(40))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoint.id", ondelete="CASCADE"))
    delivery_id: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)
    trigger_type: Mapped[int] = mapped_column(Integer, default=TriggerType.SCHEDULED)
    response_status_code: Mapped[int] = mapped_column(default=0)
    response: Mapped[str] = mapped_column(Text, default="")
    response_duration_ms: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EndpointRollup(Base):
    """An endpoint's counts for one hour, kept as attempts are recorded, so stats never scan history.

    ``success``, ``fail``, ``canceled``: its deliveries created in that hour now in that state
    (a resend or recover takes one back out). ``attempt_*``: attempts made in that hour. A
    pending delivery is not counted here: the pending set is read directly (it is the backlog,
    not the history).
    """

    __tablename__ = "endpoint_rollup"
    __table_args__ = (Index("ix_endpoint_rollup_app", "app_id", "period"),)

    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoint.id", ondelete="CASCADE"), primary_key=True)
    period: Mapped[datetime] = mapped_column(primary_key=True)  # the hour's start, UTC
    app_id: Mapped[str] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"))
    success: Mapped[int] = mapped_column(default=0)
    fail: Mapped[int] = mapped_column(default=0)
    canceled: Mapped[int] = mapped_column(default=0)
    attempt_success: Mapped[int] = mapped_column(default=0)
    attempt_fail: Mapped[int] = mapped_column(default=0)


class BackgroundTask(Base):
    """Long work started by the API (recover), with progress a client can read."""

    __tablename__ = "background_task"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="running")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The scheduler run working on it; another run leaves it alone until this passes.
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RateWindow(Base):
    """Sends to one endpoint in one second, shared by every worker (the embedded rate limiter)."""

    __tablename__ = "rate_window"

    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoint.id", ondelete="CASCADE"), primary_key=True)
    window: Mapped[int] = mapped_column(primary_key=True)  # unix second
    count: Mapped[int] = mapped_column(default=0)


class EventType(Base):
    """A kind of message an application sends, with its JSON Schema per version (Svix's catalogue)."""

    __tablename__ = "event_type"

    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # {"1": {JSON Schema, may carry "examples"}, "2": ...}
    schemas: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    archived: Mapped[bool] = mapped_column(default=False)
    deprecated: Mapped[bool] = mapped_column(default=False)
    group_name: Mapped[str | None] = mapped_column(String(256))
    feature_flags: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AccessToken(Base):
    """A token scoped to one application (app portal access); only its SHA-256 is kept."""

    __tablename__ = "access_token"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"), index=True)
    # Svix's app portal capabilities it was minted with (auth.capabilities), sorted names.
    capabilities: Mapped[list[str]] = mapped_column(JSON)
    # Event types behind one of these feature flags are visible to the token; None: none are.
    feature_flags: Mapped[list[str] | None] = mapped_column(JSON)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotentResponse(Base):
    """The answer to a POST sent with an ``idempotency-key``, replayed for a repeat of it."""

    __tablename__ = "idempotent_response"

    # A hash of the caller's token, the key, the method and the path: keys of one caller never meet another's.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    # None while the first request is still being answered.
    status_code: Mapped[int | None]
    content_type: Mapped[str | None] = mapped_column(String(256))
    # Encrypted: an answer may hold a secret (app portal access returns a token).
    body: Mapped[bytes | None] = mapped_column(EncryptedBytes)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class EndedWebSession(Base):
    """A signed-in page session ended on the server (signed out): its cookie, though still
    validly signed, no longer signs anyone in. Kept until the cookie would have expired anyway."""

    __tablename__ = "ended_web_session"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the cookie's ``sid``
    expires_at: Mapped[datetime] = mapped_column(index=True)


class SignInFailures(Base):
    """Failed console sign-ins from one client address in one window, shared by every API process."""

    __tablename__ = "sign_in_failures"

    client: Mapped[str] = mapped_column(String(64), primary_key=True)  # a digest of the address, not the address
    window_start: Mapped[int] = mapped_column(primary_key=True)  # unix second
    count: Mapped[int] = mapped_column(default=0)


def pending() -> ColumnElement[bool]:
    """``Delivery.status == PENDING`` with the status as a literal in the SQL, as the due
    set's partial index ``ix_delivery_due`` is defined: the planner uses the index for every
    execution of a prepared statement (a bound status could not prove the index's predicate)."""
    return Delivery.status == text(str(int(MessageStatus.PENDING)))
