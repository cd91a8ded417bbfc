"""What every sink is handed (one batch of a destination's messages, in order) and gives back
(the attempt's outcome, recorded in ``destination_attempt`` as an HTTP batch's is)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from hookpost.delivery.context import DeliveryContext
from hookpost.delivery.network import literal_address, refuse_unless_allowed, resolve_allowed
from hookpost.delivery.sender import AttemptResult
from hookpost.messages.service import message_out
from hookpost.settings import IPNetwork
from hookpost.storage.models import Message

# A sink that is not HTTP answers as a 2xx would when the queue or store took the whole batch.
DELIVERED = 200


@dataclass(frozen=True)
class OutgoingBatch:
    """A destination's batch as a sink sends it. ``config`` holds the decrypted credentials:
    it lives only for this attempt and is never logged or stored."""

    destination_id: str
    app_id: str
    config: dict[str, Any]
    secrets: list[str]  # signing secrets (fifoEndpoint); none for the other types
    messages: list[Message]
    signed_at: datetime

    @property
    def first_id(self) -> str:
        return self.messages[0].id

    @property
    def last_id(self) -> str:
        return self.messages[-1].id


class Sink(Protocol):
    """One destination type's way of delivering a batch."""

    def target(self, config: dict[str, Any]) -> str:
        """Where the batch goes, fit to show (no password): the attempt's ``url``."""

    async def send(self, context: DeliveryContext, batch: OutgoingBatch) -> AttemptResult:
        """Deliver the whole batch, in order, or fail (the whole batch is then sent again)."""


def message_json(message: Message) -> dict[str, Any]:
    """A message as ``GET .../msg/{id}`` shows it, payload included."""
    return message_out(message).model_dump(mode="json", by_alias=True)


def message_body(message: Message) -> bytes:
    return json.dumps(message_json(message)).encode()


class Stopwatch:
    def __init__(self) -> None:
        self._started = time.perf_counter()

    def ms(self) -> int:
        return round((time.perf_counter() - self._started) * 1000)


def delivered(watch: Stopwatch, response: str) -> AttemptResult:
    return AttemptResult(DELIVERED, response, watch.ms(), None)


def failed(watch: Stopwatch, error: str) -> AttemptResult:
    return AttemptResult(0, "", watch.ms(), error)


async def checked_address(host: str, port: int, allowed: list[IPNetwork]) -> str:
    """The address to connect to for ``host``: itself if it is one, else the first it resolves
    to; ``DestinationRefused`` if any is outside the allowed networks (delivery/network.py).
    Connecting to the returned address, not the name, means DNS cannot change in between."""
    literal = literal_address(host)
    if literal is not None:
        refuse_unless_allowed(host, str(literal), allowed)
        return str(literal)
    return (await resolve_allowed(host, port, allowed))[0]
