"""Every Hookpost setting, read from ``HOOKPOST_*`` environment variables.

The defaults run the embedded configuration (SQLite and a filesystem broker inside
``HOOKPOST_DATA_DIR``); pointing ``HOOKPOST_DATABASE_URL`` at PostgreSQL and
``HOOKPOST_BROKER_URL`` at Redis or RabbitMQ gives the production one.
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
    model_config = SettingsConfigDict(env_prefix="HOOKPOST_", extra="ignore")

    data_dir: Path = Path("hookpost-data")
    database_url: str = ""
    broker_url: str = ""
    admin_token: SecretStr | None = None
    # Encrypts endpoint secrets and headers at rest: ``new,old,...`` (README: Reliability).
    secret_key: SecretStr | None = None

    allowed_networks: Annotated[list[IPNetwork], NoDecode] = Field(default_factory=list)
    retry_schedule: Annotated[list[float], NoDecode] = Field(default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE))
    retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    delivery_timeout: float = Field(default=15.0, gt=0)
    response_body_limit: int = Field(default=4096, ge=0)
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    secret_grace_period: int = Field(default=24 * 3600, ge=0)
    scheduler_interval: float = Field(default=1.0, gt=0)
    requeue_after: float = Field(default=60.0, gt=0)
    lease_seconds: float = Field(default=60.0, gt=0)
    delivery_batch_size: int = Field(default=50, gt=0)
    dispatch_interval: float = Field(default=0.02, ge=0)  # seconds between an API process's publishes
    destination_concurrency: int = Field(default=10, gt=0)  # requests a worker process has open per receiver
    worker_in_flight: int = Field(default=200, gt=0)  # deliveries a worker process holds at once
    redis_url: str = ""
    # Longest wait for a database connection; past it the API answers 503 (README: Reliability).
    database_timeout: float = Field(default=5.0, gt=0)
    # Longest an API request's statement may wait for PostgreSQL; past it the answer is 503.
    database_statement_timeout: float = Field(default=30.0, gt=0)
    retry_after_max: float = Field(default=3600.0, ge=0)
    disable_after: float = Field(default=5 * 24 * 3600.0, gt=0)
    retention_days: float = Field(default=30.0, gt=0)
    # The live event stream (README: Live stream).
    stream_queue_size: int = Field(default=1000, gt=0)
    stream_poll_interval: float = Field(default=0.05, gt=0)
    # Seconds between checks that an app portal token's open stream is still valid (not revoked, not expired).
    stream_token_check_interval: float = Field(default=5.0, gt=0)
    # Event types (README: Event types): an endpoint may filter only on event types that exist,
    # as the Svix server requires; False for users who keep no catalogue.
    require_known_event_types: bool = True
    # Check each message's payload against its event type's newest JSON Schema, when it has one.
    validate_payloads: bool = False
    # Where users reach this server, for the app portal link; empty: the address the request came to.
    public_url: str = ""
    app_api_rate_limit: int = Field(
        default=50,
        ge=0,
        description=(
            "Requests per second the API and the app portal take from one application's scoped tokens and "
            "portal sessions together (the admin token is never limited); beyond it, 429 with Retry-After. "
            "Counted across API processes in Redis when HOOKPOST_REDIS_URL is set, else by each process; 0: no limit"
        ),
    )

    # The web console at /console (README: Console).
    console_enabled: bool = True
    console_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)

    # The app portal at /portal (README: App portal): who may frame it, and how it looks.
    # CSP source expressions, e.g. ``https://app.example.com``; empty: no page may frame it.
    portal_frame_ancestors: Annotated[list[str], NoDecode] = Field(default_factory=list)
    portal_product_name: str = Field(default="Webhooks", min_length=1, max_length=80)
    portal_logo_url: str = Field(default="", max_length=2000)  # https://... or a path on this server
    portal_accent_color: str = Field(default="#2452c7", pattern=r"^#[0-9a-fA-F]{6}$")

    # Operations: logs, readiness, worker liveness and metrics (README: Operations).
    log_format: Literal["json", "plain"] | None = None
    readiness_timeout: float = Field(default=2.0, gt=0)
    worker_heartbeat_interval: float = Field(default=10.0, gt=0)
    worker_metrics_bind: str = ""

    @field_validator("allowed_networks", "retry_schedule", mode="before")
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
