"""The bus on Redis pub/sub: one channel per application, shared by every process and host."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any

from hookpost.stream.bus.fanout import Fanout, Subscription
from hookpost.stream.bus.interface import StreamUnavailable
from hookpost.stream.events import StreamEvent

if TYPE_CHECKING:
    from redis.asyncio.client import PubSub

logger = logging.getLogger(__name__)

CHANNEL_PREFIX = "hookpost:stream:"
PUBLISH_TIMEOUT = 1.0  # seconds a batch of publishes may take before it is dropped
MAX_OUTBOX = 10_000  # events waiting to be published; beyond, new ones are dropped
PUBLISH_BATCH = 500
SUBSCRIBE_TIMEOUT = 5.0  # seconds a new client waits for its subscription before 1013
COMMAND_TIMEOUT = 2.0
READ_TIMEOUT = 5.0
HEALTH_CHECK_INTERVAL = 15  # seconds: a silently dead connection is noticed within this
RECONNECT_DELAYS = (0.1, 5.0)  # first and longest wait between reconnection attempts


class RedisBus(Fanout):
    """Fan-out through Redis pub/sub, shared by every process and host using that Redis."""

    def __init__(self, url: str, queue_size: int) -> None:
        # Imported only when Redis is configured: redis-py is 14 MB of every process that loads it.
        import redis.asyncio  # noqa: PLC0415
        from redis.asyncio.retry import Retry  # noqa: PLC0415
        from redis.backoff import NoBackoff  # noqa: PLC0415

        super().__init__(queue_size)
        self._publisher = redis.asyncio.Redis.from_url(
            url, socket_connect_timeout=PUBLISH_TIMEOUT, socket_timeout=PUBLISH_TIMEOUT
        )
        # No retries inside redis-py: the reader starts over on any failure and says so.
        self._subscriber = redis.asyncio.Redis.from_url(
            url,
            socket_connect_timeout=COMMAND_TIMEOUT,
            socket_keepalive=True,
            health_check_interval=HEALTH_CHECK_INTERVAL,
            retry=Retry(NoBackoff(), 0),
        )
        self._outbox: deque[StreamEvent] = deque()
        self._outbox_wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._sender: asyncio.Task[None] | None = None
        # Channels wanted here, each with a future done once Redis confirmed the subscription.
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # the pub/sub connection: one command or (re)connect at a time

    # Publishing.

    def publish(self, event: StreamEvent) -> None:
        if len(self._outbox) >= MAX_OUTBOX:
            self._warn("outbox", "live stream: %d events waiting for Redis; dropping new ones", len(self._outbox))
            return
        if self._sender is None or self._sender.done():
            try:
                self._sender = asyncio.get_running_loop().create_task(self._send(), name="hookpost-stream-publish")
            except RuntimeError:
                self._warn("loop", "live stream: publish outside an event loop; event dropped")
                return
        self._outbox.append(event)
        self._idle.clear()
        self._outbox_wakeup.set()

    async def _send(self) -> None:
        while True:
            while self._outbox:
                batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), PUBLISH_BATCH))]
                try:
                    async with asyncio.timeout(PUBLISH_TIMEOUT):
                        async with self._publisher.pipeline(transaction=False) as pipe:
                            for event in batch:
                                pipe.publish(CHANNEL_PREFIX + event.app_id, event.text)
                            await pipe.execute()
                except Exception as error:
                    self._warn("publish", "live stream: %d events not published to Redis: %r", len(batch), error)
            self._idle.set()
            self._outbox_wakeup.clear()
            await self._outbox_wakeup.wait()

    async def flush(self) -> None:
        await self._idle.wait()

    # Subscribing.

    @asynccontextmanager
    async def subscribe(self, app_id: str) -> AsyncIterator[Subscription]:
        channel = CHANNEL_PREFIX + app_id
        subscription = self._add(app_id)
        try:
            ready = self._ready.get(channel)
            if ready is None:
                ready = self._ready[channel] = asyncio.get_running_loop().create_future()
                self._start_reader()
                await self._command(channel, subscribe=True)
            try:
                await asyncio.wait_for(asyncio.shield(ready), SUBSCRIBE_TIMEOUT)
            except TimeoutError:
                raise StreamUnavailable("Redis did not confirm the subscription in time") from None
            subscription.live = True
            yield subscription
        finally:
            if self._remove(subscription):
                self._ready.pop(channel, None)
                self._spawn(self._command(channel, subscribe=False))

    def _start_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read(), name="hookpost-stream-subscriber")

    async def _command(self, channel: str, *, subscribe: bool) -> None:
        """(Un)subscribe on the live connection; without one the reader subscribes on connecting."""
        async with self._lock:
            pubsub = self._pubsub
            # Wanted again (or no longer) by the time we hold the lock: nothing to do.
            if pubsub is None or (channel in self._ready) != subscribe:
                return
            try:
                async with asyncio.timeout(COMMAND_TIMEOUT):
                    if subscribe:
                        await pubsub.subscribe(channel)
                    else:
                        await pubsub.unsubscribe(channel)
            except Exception as error:
                self._warn("command", "live stream: Redis (un)subscribe failed, reconnecting: %r", error)
                # The reader's next read fails, and it starts over with every wanted channel.
                with suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _read(self) -> None:
        delay = RECONNECT_DELAYS[0]
        while True:
            pubsub = self._subscriber.pubsub()
            try:
                async with self._lock:
                    async with asyncio.timeout(COMMAND_TIMEOUT):
                        await pubsub.connect()  # type: ignore[no-untyped-call]
                        if self._ready:
                            await pubsub.subscribe(*self._ready)
                    self._pubsub = pubsub
                delay = RECONNECT_DELAYS[0]
                while True:
                    message = await pubsub.get_message(timeout=READ_TIMEOUT)
                    if message is not None:
                        self._handle(message)
                        await self._pace()
            except Exception as error:
                self._warn("read", "live stream: Redis pub/sub unavailable, retrying: %r", error)
            finally:
                self._pubsub = None
                with suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            # Whatever was published while we were away never reached us: say so, and make
            # new clients wait for the subscriptions to be confirmed again.
            self._interrupt()
            loop = asyncio.get_running_loop()
            for channel, ready in list(self._ready.items()):
                if ready.done():
                    self._ready[channel] = loop.create_future()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_DELAYS[1])

    def _handle(self, message: dict[str, Any]) -> None:
        raw = message.get("channel")
        channel = raw.decode() if isinstance(raw, bytes) else str(raw)
        if message.get("type") == "message" and channel.startswith(CHANNEL_PREFIX):
            data = message.get("data")
            text = data.decode() if isinstance(data, bytes) else str(data)
            self._deliver(channel.removeprefix(CHANNEL_PREFIX), text)
        elif message.get("type") == "subscribe":
            ready = self._ready.get(channel)
            if ready is not None and not ready.done():
                ready.set_result(None)

    async def aclose(self) -> None:
        with suppress(TimeoutError):
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                await self.flush()
        for task in (self._sender, self._reader):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self._cancel_background()
        await self._publisher.aclose()
        await self._subscriber.aclose()
