"""Every Hookpost setting, read from ``HOOKPOST_*`` environment variables.

The defaults run the embedded configuration (SQLite and a filesystem broker inside
``HOOKPOST_DATA_DIR``); pointing ``HOOKPOST_DATABASE_URL`` at PostgreSQL and
``HOOKPOST_BROKER_URL`` at Redis or RabbitMQ gives the production one.

Longer than most modules on purpose: one class, one field per setting, each with the
description that docs/settings.md is generated from.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hookpost.kit.proxy_url import NoProxy, parse_proxy_url
from hookpost.kit.secret_box import new_key, parse_keys

ADMIN_TOKEN_FILE = "admin-token"  # noqa: S105 - a file name, not a secret
SECRET_KEY_FILE = "secret-key"  # noqa: S105 - a file name, not a secret
MIN_ADMIN_TOKEN_LENGTH = 24
DEFAULT_RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _split_csv(value: object) -> object:
    """Lists arrive from the environment as ``a,b,c``, not JSON."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    # A refused value is named, never repeated: it may be a token, a key or a proxy's password.
    model_config = SettingsConfigDict(env_prefix="HOOKPOST_", extra="ignore", hide_input_in_errors=True)

    data_dir: Path = Field(
        default=Path("hookpost-data"),
        description="where the embedded default keeps its database, broker folders and generated admin token",
    )
    database_url: str = Field(
        default="",
        description="`sqlite+aiosqlite:///path` or `postgresql+asyncpg://...`",
        json_schema_extra={"when_unset": "SQLite file in the data dir"},
    )
    broker_url: str = Field(
        default="",
        description="`redis://...` or `amqp://...` in production",
        json_schema_extra={"when_unset": "`filesystem://` (folders in the data dir)"},
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description=(
            "the bearer token for the API, at least 24 characters; when unset, `hookpost serve` generates one and"
            " stores it in `<data dir>/admin-token`. There is no built-in token"
        ),
        json_schema_extra={"when_unset": "none"},
    )
    # Encrypts endpoint secrets and headers at rest: ``new,old,...`` (docs/reliability.md).
    secret_key: SecretStr | None = Field(
        default=None,
        description=(
            "comma-separated Fernet keys (32 bytes, url-safe base64) that encrypt endpoint secrets and custom "
            "headers at rest; the first encrypts, all decrypt. Required with PostgreSQL: `api`, `worker`, "
            "`scheduler`, `migrate` and `serve` refuse to start without it"
        ),
        json_schema_extra={"when_unset": "the embedded default makes `<data dir>/secret-key`"},
    )

    allowed_networks: Annotated[list[IPNetwork], NoDecode] = Field(
        description=(
            "comma-separated CIDRs that may be delivered to even though they are not public (e.g. "
            "`127.0.0.0/8,10.1.0.0/16`); public addresses are always allowed"
        ),
        default_factory=list,
    )
    proxy_url: SecretStr | None = Field(
        default=None,
        description=(
            "the outbound proxy every delivery goes through: `http://host:port` (HTTP CONNECT) or "
            "`socks5://host:port`, optionally with `user:password@`. Hookpost still resolves and checks each "
            "destination itself and asks the proxy for the checked address (docs/proxy.md)"
        ),
        json_schema_extra={"when_unset": "empty (deliveries connect directly)"},
    )
    no_proxy: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "comma-separated destinations that bypass `HOOKPOST_PROXY_URL`: host names (each covers its "
            "subdomains), IP addresses, CIDRs, or `*` for all"
        ),
    )
    retry_schedule: Annotated[list[float], NoDecode] = Field(
        description="seconds to wait before each attempt, the first being the initial send",
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE),
    )
    retry_jitter: float = Field(
        description="each wait varies by up to this fraction either way", default=0.2, ge=0, lt=1
    )
    delivery_timeout: float = Field(description="seconds an attempt may take", default=15.0, gt=0)
    response_body_limit: int = Field(description="bytes of a receiver's answer read and stored", default=4096, ge=0)
    max_body_bytes: int = Field(
        description="largest request body the API accepts (413 above)", default=1024 * 1024, gt=0
    )
    secret_grace_period: int = Field(description="seconds a rotated-out secret keeps signing", default=24 * 3600, ge=0)
    default_signature_type: Literal["hmac256", "ed25519"] = Field(
        description=(
            "the kind of signing secret generated for an endpoint created or rotated without one: `hmac256` "
            "(`whsec_`, signatures `v1`) or `ed25519` (`whsk_`, signatures `v1a`, receivers verify with the "
            "`whpk_` public key; docs/integrations.md)"
        ),
        default="hmac256",
    )
    poller_settle: float = Field(
        description=(
            "seconds a message waits before a polling endpoint hands it out: longer than a message's write may "
            "take, so none is committed behind a position a poller already passed (docs/destinations.md)"
        ),
        default=2.0,
        ge=0,
    )
    scheduler_interval: float = Field(
        description="seconds between scheduler ticks (each: one query for due deliveries, one for background tasks)",
        default=1.0,
        gt=0,
    )
    requeue_after: float = Field(
        description="seconds a queued delivery waits for its task before the scheduler queues it again",
        default=60.0,
        gt=0,
    )
    lease_seconds: float = Field(
        description=(
            "how long a worker holds a delivery it is sending; a crashed worker's deliveries are picked up after this"
        ),
        default=60.0,
        gt=0,
    )
    delivery_batch_size: int = Field(
        description="deliveries per scheduler task, and the size a worker's claims and records aim for",
        default=50,
        gt=0,
    )
    dispatch_interval: float = Field(
        description=(
            "seconds an API process leaves between two publishes of new deliveries; what arrives meanwhile shares"
            " one task (0: publish each batch at once)"
        ),
        default=0.02,
        ge=0,
    )  # seconds between an API process's publishes
    destination_concurrency: int = Field(
        description=(
            "requests one worker process has in flight to one receiver (scheme, host and port) at a time; its "
            "other deliveries wait their turn, and other receivers' do not wait for them"
        ),
        default=10,
        gt=0,
    )  # requests a worker process has open per receiver
    worker_in_flight: int = Field(
        description="deliveries one worker process holds at once (claimed, sending or being recorded)",
        default=200,
        gt=0,
    )  # deliveries a worker process holds at once
    # How many processes `hookpost serve` runs (hookpost.process.commands.serve_processes).
    serve_api_workers: int | None = Field(
        default=None,
        gt=0,
        description=(
            "API worker processes `hookpost serve` runs (its `--workers` wins over this); `hookpost api` reads "
            "`WEB_CONCURRENCY` instead"
        ),
        json_schema_extra={"when_unset": "1 on the embedded SQLite database, 2 on PostgreSQL"},
    )
    serve_worker_concurrency: int | None = Field(
        default=None,
        gt=0,
        description=(
            "delivery processes of the worker `hookpost serve` runs (its `--concurrency` wins over this): 1 is one"
            " process on Celery's thread pool, more is a prefork parent and that many pool processes"
        ),
        json_schema_extra={"when_unset": "1 on the embedded SQLite database, one per CPU on PostgreSQL"},
    )
    application_in_flight: int = Field(
        description=(
            "of those, the most one application may hold: the rest stays for the other applications, however many "
            "receivers, hanging connections or due messages one of them has (docs/delivery.md)"
        ),
        default=50,
        gt=0,
    )
    redis_url: str = Field(
        default="",
        description=(
            "Redis for the cross-worker rate limiter and the live stream's pub/sub; without it the database "
            "counts and the stream goes through files in the data dir"
        ),
        json_schema_extra={"when_unset": "the broker URL when that is Redis"},
    )
    # Longest wait for a database connection; past it the API answers 503 (docs/reliability.md).
    database_timeout: float = Field(
        description=(
            "seconds the API waits for a database connection (connect, or a free one in the pool) before it answers 503"
        ),
        default=5.0,
        gt=0,
    )
    # Longest an API request's statement may wait for PostgreSQL; past it the answer is 503.
    database_statement_timeout: float = Field(
        description=(
            "seconds an API statement may wait for PostgreSQL (a server that hangs rather than refuses) before "
            "the answer is 503"
        ),
        default=30.0,
        gt=0,
    )
    retry_after_max: float = Field(
        description="longest wait a receiver's `Retry-After` can ask for, in seconds", default=3600.0, ge=0
    )
    disable_after: float = Field(
        description="seconds (5 days) of nothing but failed attempts after which an endpoint is disabled",
        default=5 * 24 * 3600.0,
        gt=0,
    )
    retention_days: float = Field(
        description=(
            "days messages, their deliveries and attempts are kept; then they are removed (on PostgreSQL a week's"
            " partition at once), except a message still owed a delivery, kept until its last delivery ends."
            " Endpoint stats keep their counts"
        ),
        default=30.0,
        gt=0,
    )
    payload_retention_days: float | None = Field(
        description=(
            "days message payloads and response bodies are kept before they are blanked, the rest of the record"
            " staying until `retention_days`; unset: as `retention_days`. A message's own payloadRetentionPeriod"
            " overrides it"
        ),
        default=None,
        gt=0,
    )
    # The live event stream (docs/live-stream.md).
    stream_queue_size: int = Field(
        description=(
            "events queued for one live-stream client; beyond, new ones are dropped for it and it gets `stream.lagged`"
        ),
        default=1000,
        gt=0,
    )
    stream_poll_interval: float = Field(
        description="seconds between reads of the live stream's event files by API workers with clients (no Redis)",
        default=0.05,
        gt=0,
    )
    # Seconds between checks that an app portal token's open stream is still valid (not revoked, not expired).
    stream_token_check_interval: float = Field(
        description=(
            "seconds between checks that an app portal token's open live stream is still valid (logged out or "
            "expired: closed with `4401`)"
        ),
        default=5.0,
        gt=0,
    )
    # Event types (docs/api.md: Event types): an endpoint may filter only on event types that exist,
    # as the Svix server requires; False for users who keep no catalogue.
    require_known_event_types: bool = Field(
        default=True,
        description=(
            "an endpoint may filter only on event types in the catalogue (`/api/v1/event-type`), as Svix "
            "requires; `false` for users who keep none"
        ),
    )
    # Check each message's payload against its event type's newest JSON Schema, when it has one.
    validate_payloads: bool = Field(
        default=False,
        description=(
            "check every message's payload against its event type's newest JSON Schema, refusing a mismatch with "
            "`422` (one more database read per message)"
        ),
    )
    # Where users reach this server, for the app portal link; empty: the address the request came to.
    public_url: str = Field(
        default="",
        description=(
            "where users reach Hookpost, for the links `app-portal-access` returns, e.g. `https://hooks.example.com`"
        ),
        json_schema_extra={"when_unset": "empty (the address the request came to)"},
    )
    app_api_rate_limit: int = Field(
        default=50,
        ge=0,
        description=(
            "requests per second the API and the app portal take from one application's scoped tokens and "
            "portal sessions together (the admin token is never limited); beyond it, 429 with Retry-After. "
            "Counted across API processes in Redis when HOOKPOST_REDIS_URL is set, else by each process; 0: no limit"
        ),
    )

    # The web console at /console (docs/console.md).
    console_enabled: bool = Field(default=True, description="serve the console at `/console/` (and redirect `/` there)")
    console_session_hours: float = Field(
        description="how long a console sign-in lasts (at most 720)", default=12.0, gt=0, le=24 * 30
    )
    # Sign-in throttle, per client address (auth/sign_in_throttle.py).
    console_sign_in_failures: int = Field(
        description=(
            "wrong tokens one client address may try at the console's sign-in within the window; past it, "
            "sign-ins from that address answer 429 until the window ends"
        ),
        default=10,
        gt=0,
    )
    console_sign_in_window: float = Field(description="the sign-in throttle's window, in seconds", default=300.0, gt=0)

    # The app portal at /portal (docs/portal.md): who may frame it, and how it looks.
    # CSP source expressions, e.g. ``https://app.example.com``; empty: no page may frame it.
    portal_frame_ancestors: Annotated[list[str], NoDecode] = Field(
        description=(
            "origins that may embed the [app portal](portal.md) in a frame, space- or comma-separated CSP "
            "sources, e.g. `https://app.example.com`; naming one makes the portal's cookies `SameSite=None; "
            "Secure; Partitioned` over HTTPS (and on loopback), so that it works framed from another site"
        ),
        json_schema_extra={"when_unset": "empty (no framing)"},
        default_factory=list,
    )
    portal_product_name: str = Field(
        description="the name the app portal shows in its header and titles",
        default="Webhooks",
        min_length=1,
        max_length=80,
    )
    portal_logo_url: str = Field(
        description="an `https://` URL (or a path on this server) of a logo for the app portal's header",
        default="",
        max_length=2000,
    )  # https://... or a path on this server
    portal_accent_color: str = Field(
        description="the app portal's accent colour (links, buttons), as `#rrggbb`",
        default="#2452c7",
        pattern=r"^#[0-9a-fA-F]{6}$",
    )

    # Operations: logs, readiness, worker liveness and metrics (docs/operations.md).
    log_format: Literal["json", "plain"] | None = Field(
        default=None,
        description="log lines as JSON objects or plain text; set `json` for the API under Uvicorn alone",
        json_schema_extra={"when_unset": "`json`, or `plain` for `hookpost dev`"},
    )
    readiness_timeout: float = Field(
        description="seconds each `/readyz` check (and the backlog query of `/metrics`) may take", default=2.0, gt=0
    )
    worker_heartbeat_interval: float = Field(
        description="seconds between a worker's heartbeats, read by `hookpost worker-health`", default=10.0, gt=0
    )
    otel_enabled: bool | None = Field(
        default=None,
        description=(
            "OpenTelemetry traces exported with OTLP over HTTP (docs/integrations.md); the exporter, "
            "sampler and service name take the standard `OTEL_*` variables"
        ),
        json_schema_extra={
            "when_unset": "on when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set"
        },
    )
    worker_metrics_bind: str = Field(
        default="",
        description="`host:port` where `hookpost worker` serves its own `/metrics`, e.g. `0.0.0.0:9100`",
        json_schema_extra={"when_unset": "empty (off)"},
    )

    @field_validator("allowed_networks", "retry_schedule", "no_proxy", mode="before")
    @classmethod
    def _lists_from_csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("portal_frame_ancestors", mode="before")
    @classmethod
    def _sources_from_list(cls, value: object) -> object:
        # As CSP writes them (space-separated) or as the other lists here (comma-separated).
        return _split_csv(value.replace(" ", ",")) if isinstance(value, str) else value

    @field_validator("portal_frame_ancestors")
    @classmethod
    def _sources_safe(cls, value: list[str]) -> list[str]:
        for source in value:
            # Only what a frame-ancestors source may be: no ';' or ',' to smuggle in another directive.
            if not re.fullmatch(r"'self'|'none'|[a-zA-Z][a-zA-Z0-9+.-]*:|([a-z]+://)?[a-zA-Z0-9*.\-\[\]:]+/?", source):
                raise ValueError(f"{source!r} is not a frame-ancestors source (e.g. https://app.example.com)")
        return value

    @field_validator("portal_logo_url")
    @classmethod
    def _logo_url_safe(cls, value: str) -> str:
        parts = urlsplit(value)
        absolute = parts.scheme == "https" and bool(parts.netloc)
        local = value.startswith("/") and not value.startswith("//") and not parts.netloc
        if value and not absolute and not local:
            raise ValueError("must be an https:// URL or a path on this server")
        return value

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _networks_not_strict(cls, value: object) -> object:
        if isinstance(value, list):
            return [ipaddress.ip_network(str(net), strict=False) for net in value]
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _schedule_sane(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("needs at least one attempt")
        if any(delay < 0 for delay in value):
            raise ValueError("delays must be >= 0 seconds")
        return value

    @field_validator("proxy_url")
    @classmethod
    def _proxy_url_valid(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            parse_proxy_url(value.get_secret_value())  # its messages never repeat the URL
        return value or None

    @field_validator("no_proxy")
    @classmethod
    def _no_proxy_valid(cls, value: list[str]) -> list[str]:
        NoProxy.parse(value)
        return value

    @field_validator("admin_token")
    @classmethod
    def _token_strong(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_ADMIN_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_ADMIN_TOKEN_LENGTH} characters")
        return value

    @field_validator("secret_key")
    @classmethod
    def _keys_valid(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_keys(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Settings:
        # Absolute, so every child process agrees on where the files are.
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'hookpost.db'}"
        if not self.broker_url:
            self.broker_url = "filesystem://"
        if not self.redis_url and self.broker_url.startswith(("redis://", "rediss://")):
            self.redis_url = self.broker_url
        if self.lease_seconds <= self.delivery_timeout:
            # A lease shorter than an attempt would let a second worker send while the first still is.
            raise ValueError("HOOKPOST_LEASE_SECONDS must be longer than HOOKPOST_DELIVERY_TIMEOUT")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir / ADMIN_TOKEN_FILE

    def load_admin_token(self, *, create: bool) -> str | None:
        """The configured token, else the one stored in the data directory.

        With ``create`` a missing token is generated and stored (owner-only), so a
        first ``hookpost serve`` is secure without any configuration.
        """
        if self.admin_token is not None:
            return self.admin_token.get_secret_value()
        path = self.admin_token_file
        if path.exists():
            return path.read_text().strip()
        if not create:
            return None
        token = "hp_" + secrets.token_urlsafe(32)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(token + "\n")
        return token

    @property
    def secret_key_file(self) -> Path:
        return self.data_dir / SECRET_KEY_FILE

    def load_secret_keys(self, *, create: bool) -> list[str] | None:
        """HOOKPOST_SECRET_KEY's keys; on the embedded default, else the data directory's.

        With PostgreSQL only the environment counts: processes on several machines must
        share one key, and a key each made for itself could not read the others' rows.
        With ``create`` a missing embedded key is generated and stored (owner-only).
        """
        if self.secret_key is not None:
            return parse_keys(self.secret_key.get_secret_value())
        if not self.is_sqlite:
            return None
        path = self.secret_key_file
        if not path.exists():
            if not create:
                return None
            self.data_dir.mkdir(parents=True, exist_ok=True)
            draft = path.with_name(f".{SECRET_KEY_FILE}-{secrets.token_hex(4)}")
            draft.touch(mode=0o600)
            draft.write_text(new_key() + "\n")
            try:
                path.hardlink_to(draft)  # atomic, and never over a key another process just made
            except FileExistsError:
                pass
            finally:
                draft.unlink()
        return parse_keys(path.read_text())

    def secret_keys(self) -> list[str]:
        """The keys this process encrypts with; MissingSecretKey if there are none."""
        keys = self.load_secret_keys(create=True)
        if keys is None:
            raise MissingSecretKey(
                "HOOKPOST_SECRET_KEY is not set. With PostgreSQL every process (api, worker, "
                "scheduler) needs the same key; make one with `hookpost rotate-key --new`."
            )
        return keys


class MissingSecretKey(RuntimeError):
    pass


@lru_cache
def get_settings() -> Settings:
    return Settings()
