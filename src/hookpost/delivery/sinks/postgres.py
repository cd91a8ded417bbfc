"""postgres: the batch inserted as rows, in one transaction, into the operator's table.

The table needs the columns ``msg_id``, ``event_type``, ``channels`` (jsonb), ``payload``
(jsonb) and ``created_at`` (timestamptz); rows go in in the messages' order with
``ON CONFLICT DO NOTHING``, so with ``msg_id`` unique a repeated batch adds nothing twice.
Each attempt opens its own connection, to the address checked against the allowed networks;
with TLS the certificate is checked for the host's name (and against ``sslRootCert`` if given).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]

from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.network import DestinationRefused, DnsLookupFailed
from hookpost.delivery.sender import AttemptResult, describe_failure
from hookpost.delivery.sinks.batch import OutgoingBatch, Stopwatch, checked_address, delivered, failed, message_json
from hookpost.kit.time import as_utc
from hookpost.kit.urls import redact_url
from hookpost.storage.models import Message

# sslmode values that ask for TLS; "prefer" and "allow" are served as "require", never as plain text
# (a destination's data does not fall back to an unencrypted connection unasked).
_TLS_MODES = frozenset({"require", "verify-ca", "verify-full", "prefer", "allow"})


class _NamedContext(ssl.SSLContext):
    """Checks the server's certificate for the host's name although the socket connects to its
    checked address (asyncpg would otherwise check it against that address)."""

    server_name: str = ""

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        kwargs["server_hostname"] = self.server_name
        return super().wrap_bio(*args, **kwargs)


def quoted_table(table_name: str) -> str:
    """``schema.table`` with each part double-quoted (the schema's pattern allows no quote in it)."""
    return ".".join(f'"{part}"' for part in table_name.split("."))


def tls_context(url: str, host: str, root_cert: str | None) -> ssl.SSLContext | bool:
    """The TLS the URL's ``sslmode`` asks for (False: none), verified for ``host``'s name."""
    query = dict(part.split("=", 1) for part in urlsplit(url).query.split("&") if "=" in part)
    mode = query.get("sslmode", "verify-full" if root_cert else "disable")
    if mode not in _TLS_MODES and root_cert is None:
        return False
    context = _NamedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.server_name = host
    if mode in ("require", "prefer", "allow") and root_cert is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # what sslmode=require means in libpq: encrypted, not verified
        return context
    if root_cert is not None:
        context.load_verify_locations(cadata=root_cert)
    else:
        context.load_default_certs()
    context.check_hostname = mode == "verify-full"
    return context


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
        return f"authentication failed: {exc}"
    if isinstance(exc, asyncpg.UndefinedTableError | asyncpg.UndefinedColumnError):
        return f"the table is not as Hookpost needs it: {exc}"
    if isinstance(exc, asyncpg.PostgresError):
        return f"PostgreSQL refused the rows: {type(exc).__name__}: {exc}"
    return describe_failure(exc)


def _row(message: Message) -> tuple[Any, ...]:
    shown = message_json(message)
    channels = shown["channels"]
    return (
        message.id,
        message.event_type,
        None if channels is None else json.dumps(channels),
        json.dumps(shown["payload"]),
        as_utc(message.created_at),
    )


class PostgresSink:
    def target(self, config: dict[str, Any]) -> str:
        return f"{redact_url(str(config['url']))}#{config['table_name']}"

    async def send(self, context: DeliveryContext, batch: OutgoingBatch) -> AttemptResult:
        watch = Stopwatch()
        config = batch.config
        url = str(config["url"])
        parts = urlsplit(url)
        host, port = parts.hostname or "localhost", parts.port or 5432
        insert = (
            # The table's name is checked (destinations/schemas.py TableName) and quoted: no injection.
            f"INSERT INTO {quoted_table(str(config['table_name']))} "  # noqa: S608
            "(msg_id, event_type, channels, payload, created_at) "
            "VALUES ($1, $2, $3::jsonb, $4::jsonb, $5) ON CONFLICT DO NOTHING"
        )
        rows = [_row(message) for message in batch.messages]
        connection: asyncpg.Connection | None = None
        try:
            async with asyncio.timeout(context.settings.delivery_timeout):
                address = await checked_address(host, port, context.settings.allowed_networks)
                # Loading certificates reads files: not on the event loop.
                tls = await asyncio.to_thread(tls_context, url, host, config.get("ssl_root_cert"))
                connection = await asyncpg.connect(
                    host=address,
                    port=port,
                    user=parts.username or "postgres",
                    # Never None: asyncpg would then look in this machine's ~/.pgpass.
                    password=config.get("password") or "",
                    database=parts.path.lstrip("/") or None,
                    ssl=tls,
                    server_settings={"application_name": "hookpost"},
                )
                async with connection.transaction():
                    await connection.executemany(insert, rows)
        except (asyncpg.PostgresError, OSError, TimeoutError, DestinationRefused, DnsLookupFailed) as exc:
            return failed(watch, _describe(exc))
        finally:
            if connection is not None:
                connection.terminate()
        return delivered(watch, f"{len(rows)} rows inserted")
