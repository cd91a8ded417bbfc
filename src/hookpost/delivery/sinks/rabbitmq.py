"""rabbitMq: each message published, in order, to the default exchange with the destination's
routing key (a queue's name routes to that queue), persistent and confirmed by the broker.

The batch succeeds only when the broker has confirmed every message (publisher confirms);
with ``mandatory`` a message no queue takes fails the batch instead of being dropped. Each
attempt opens its own connection, to the address checked against the allowed networks.
"""

from __future__ import annotations

import asyncio
import ssl
from functools import lru_cache
from typing import Any

import aiormq
from aiormq.abc import ConfirmationFrameType
from aiormq.connection import TransportFactory
from pamqp import commands
from yarl import URL

from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.network import DestinationRefused, DnsLookupFailed
from hookpost.delivery.sender import AttemptResult, describe_failure
from hookpost.delivery.sinks.batch import OutgoingBatch, Stopwatch, checked_address, delivered, failed, message_body
from hookpost.kit.urls import redact_url
from hookpost.settings import IPNetwork
from hookpost.storage.models import Message


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    # Made once: loading the system's roots reads files, which would hold up the event loop each time.
    return ssl.create_default_context()


class _CheckedTransport(TransportFactory):
    """Connects to the address the broker's host was checked to be, TLS verified for its name."""

    def __init__(self, allowed: list[IPNetwork]) -> None:
        self._allowed = allowed

    async def create(self, url: URL, **kwargs: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        kwargs.pop("ssl_context_provider", None)
        host, port = url.host or "", url.port or 5672
        address = await checked_address(host, port, self._allowed)
        if url.scheme == "amqps":
            return await asyncio.open_connection(address, port, ssl=_tls(), server_hostname=host, **kwargs)
        return await asyncio.open_connection(address, port, **kwargs)


def _connection_url(uri: str) -> str:
    """The URI without its query: aiormq would read certificate files of this machine named there."""
    return str(URL(uri).with_query(None))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError):
        return "authentication failed: the broker refused the user name or password"
    if isinstance(exc, aiormq.exceptions.PublishError):
        text = getattr(getattr(exc, "frame", None), "reply_text", "") or "returned"
        return f"the broker returned a message ({text}): no queue is bound to the routing key (mandatory)"
    if isinstance(exc, aiormq.exceptions.ChannelNotFoundEntity | aiormq.exceptions.ConnectionNotAllowed):
        return f"the broker refused: {exc}"
    if isinstance(exc, aiormq.exceptions.AMQPError) and not isinstance(exc, aiormq.exceptions.AMQPConnectionError):
        return f"AMQP error: {exc}"
    return describe_failure(exc)


class RabbitMqSink:
    def target(self, config: dict[str, Any]) -> str:
        return redact_url(str(config["uri"]))

    async def send(self, context: DeliveryContext, batch: OutgoingBatch) -> AttemptResult:
        watch = Stopwatch()
        routing_key = str(batch.config["routing_key"])
        mandatory = bool(batch.config.get("mandatory", False))
        connection: aiormq.abc.AbstractConnection | None = None
        try:
            async with asyncio.timeout(context.settings.delivery_timeout):
                connection = aiormq.Connection(
                    _connection_url(str(batch.config["uri"])),
                    transport_factory=_CheckedTransport(context.settings.allowed_networks),
                )
                await connection.connect()
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                # Published one after the other on one channel (so in order), their confirmations
                # awaited together: a batch costs one round trip, not one per message.
                confirmations = await asyncio.gather(
                    *(_publish(channel, message, routing_key, mandatory) for message in batch.messages),
                    return_exceptions=True,
                )
                for confirmation in confirmations:
                    if isinstance(confirmation, BaseException):
                        raise confirmation
                    _check_confirmed(confirmation)
        except (aiormq.exceptions.AMQPError, OSError, TimeoutError, DestinationRefused, DnsLookupFailed) as exc:
            return failed(watch, _describe(exc))
        finally:
            if connection is not None:
                await _close_quietly(connection)
        return delivered(watch, f"{len(batch.messages)} messages published and confirmed")


async def _publish(
    channel: aiormq.abc.AbstractChannel, message: Message, routing_key: str, mandatory: bool
) -> ConfirmationFrameType | None:
    return await channel.basic_publish(
        message_body(message),
        routing_key=routing_key,
        mandatory=mandatory,
        properties=aiormq.spec.Basic.Properties(
            content_type="application/json",
            delivery_mode=2,  # persistent
            message_id=message.id,
            message_type=message.event_type,
            app_id="hookpost",
        ),
    )


def _check_confirmed(confirmation: ConfirmationFrameType | None) -> None:
    if not isinstance(confirmation, commands.Basic.Ack):
        raise aiormq.exceptions.AMQPError(f"the broker did not confirm a message ({type(confirmation).__name__})")


async def _close_quietly(connection: aiormq.abc.AbstractConnection) -> None:
    try:
        async with asyncio.timeout(2):
            await connection.close()
    except (aiormq.exceptions.AMQPError, OSError, TimeoutError):
        pass  # the broker went away: nothing is left to close
