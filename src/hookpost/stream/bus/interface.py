"""What the rest of Hookpost sees of the bus: publish, flush, subscribe (``stream.bus``)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

from hookpost.stream.events import StreamEvent

if TYPE_CHECKING:
    from hookpost.stream.bus.fanout import Subscription


class StreamUnavailable(Exception):
    """The bus cannot deliver events to a new client right now."""


class EventPublisher(Protocol):
    def publish(self, event: StreamEvent) -> None:
        """Send the event on its way: never raises, never waits."""

    async def flush(self) -> None:
        """Wait until the events published so far have left this process (bound it with a timeout)."""

    async def aclose(self) -> None: ...


class EventBus(EventPublisher, Protocol):
    def subscribe(self, app_id: str) -> AbstractAsyncContextManager[Subscription]:
        """This application's events from now on, until the block exits.

        On entry every event published after it is guaranteed to arrive (or be counted as
        dropped); raises ``StreamUnavailable`` if that cannot be promised.
        """


class NullPublisher:
    """Publishes nowhere: for code paths (and tests) that have no bus."""

    def publish(self, event: StreamEvent) -> None:
        pass

    async def flush(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
