"""This process's subscribers: each client's bounded queue, and the fan-out by application
that both transports share."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from hookpost.kit.throttled_log import ThrottledWarnings
from hookpost.stream import events

logger = logging.getLogger(__name__)

WARN_EVERY = 10.0  # seconds between two log lines about the same trouble


@dataclass
class _Gap:
    """Where events are missing in a client's queue: ``dropped`` by us, or lost on the bus."""

    dropped: int = 0
    interrupted: bool = False


class Subscription:
    """One client's bounded queue of events in wire form (shared strings, not copies).

    Holds at most ``max_queued`` events plus one gap marker: when full, an event is
    counted in the gap at the end of the queue instead, and the client gets a
    ``stream.lagged`` notice there.
    """

    def __init__(self, app_id: str, max_queued: int) -> None:
        self.app_id = app_id
        self.live = False  # set once the subscription is in place on the bus
        self.dropped = 0
        self._max_queued = max_queued
        self._items: deque[str | _Gap] = deque()
        self._wakeup = asyncio.Event()

    def put(self, text: str) -> None:
        if len(self._items) < self._max_queued:
            self._items.append(text)
        else:
            self._gap().dropped += 1
            self.dropped += 1
        self._wakeup.set()

    def interrupt(self) -> None:
        self._gap().interrupted = True
        self._wakeup.set()

    def _gap(self) -> _Gap:
        last = self._items[-1] if self._items else None
        if isinstance(last, _Gap):
            return last
        gap = _Gap()
        self._items.append(gap)
        return gap

    async def get(self) -> str:
        """The next event or notice, waiting for one."""
        while not self._items:
            self._wakeup.clear()
            await self._wakeup.wait()
        item = self._items.popleft()
        if isinstance(item, str):
            return item
        if item.interrupted:
            if item.dropped:
                self._items.appendleft(_Gap(dropped=item.dropped))
            return events.interrupted()
        return events.lagged(item.dropped)


class Fanout:
    """The subscriptions of this process, by application."""

    def __init__(self, queue_size: int) -> None:
        self._queue_size = queue_size
        self._subscriptions: dict[str, set[Subscription]] = {}
        # Readers hand out at most this many events before letting the senders run: a burst
        # from the bus must not overflow the queue of a client that keeps up.
        self._burst = max(1, queue_size // 4)
        self._since_yield = 0
        self._warn = ThrottledWarnings(logger, WARN_EVERY)
        self._background: set[asyncio.Task[None]] = set()

    def _add(self, app_id: str) -> Subscription:
        subscription = Subscription(app_id, self._queue_size)
        self._subscriptions.setdefault(app_id, set()).add(subscription)
        return subscription

    def _remove(self, subscription: Subscription) -> bool:
        """Forget the subscription; True if it was its application's last one here."""
        subscriptions = self._subscriptions.get(subscription.app_id)
        if subscriptions is None:
            return False
        subscriptions.discard(subscription)
        if subscriptions:
            return False
        del self._subscriptions[subscription.app_id]
        return True

    def _deliver(self, app_id: str, text: str) -> None:
        for subscription in self._subscriptions.get(app_id, ()):
            subscription.put(text)

    async def _pace(self) -> None:
        """Called by a reader after each event: now and then, let the clients' senders run."""
        self._since_yield += 1
        if self._since_yield >= self._burst:
            self._since_yield = 0
            await asyncio.sleep(0)

    def _interrupt(self) -> None:
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                if subscription.live:
                    subscription.interrupt()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _cancel_background(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
