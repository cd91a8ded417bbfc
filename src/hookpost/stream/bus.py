"""Carries live events from the processes that make them (API workers, Celery workers) to
every API process that has WebSocket clients, behind one small interface.

- ``RedisBus`` when Hookpost has Redis (``HOOKPOST_REDIS_URL``, which defaults to a Redis
  broker URL): one pub/sub channel per application, ``hookpost:stream:<app id>``; an API
  process subscribes to an application's channel while it has clients for it.
- ``FileBus`` otherwise, for one host and no server: publishers append one line per event
  to a segment file in ``<data dir>/stream`` (a new file every 10 seconds, removed after a
  minute); API processes with clients tail the current segments.

Publishing never raises and never waits on the transport: Redis publishes go through a
bounded outbox drained by a background task with a short timeout (a worker calls ``flush``
before its event loop stops); a file publish is one append to the page cache. Errors are
logged, at most once per 10 seconds each, and the event is dropped.

Each client has a bounded queue (``HOOKPOST_STREAM_QUEUE_SIZE``). When it is full, new
events for that client are dropped and counted, and the client gets a ``stream.lagged``
notice with the count in their place; other clients never wait for a slow one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hookpost.kit.throttled_log import ThrottledWarnings
from hookpost.settings import Settings
from hookpost.stream import events
from hookpost.stream.events import StreamEvent

if TYPE_CHECKING:
    from redis.asyncio.client import PubSub

logger = logging.getLogger(__name__)

WARN_EVERY = 10.0  # seconds between two log lines about the same trouble


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


class _Fanout:
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


# --- Redis pub/sub -------------------------------------------------------------------------

CHANNEL_PREFIX = "hookpost:stream:"
PUBLISH_TIMEOUT = 1.0  # seconds a batch of publishes may take before it is dropped
MAX_OUTBOX = 10_000  # events waiting to be published; beyond, new ones are dropped
PUBLISH_BATCH = 500
SUBSCRIBE_TIMEOUT = 5.0  # seconds a new client waits for its subscription before 1013
COMMAND_TIMEOUT = 2.0
READ_TIMEOUT = 5.0
HEALTH_CHECK_INTERVAL = 15  # seconds: a silently dead connection is noticed within this
RECONNECT_DELAYS = (0.1, 5.0)  # first and longest wait between reconnection attempts


class RedisBus(_Fanout):
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


# --- Files in the data directory -----------------------------------------------------------

SEGMENT_SECONDS = 10
KEEP_SEGMENTS = 6  # older segment files are removed by publishers
MAX_EVENT_BYTES = 64 * 1024
READ_CHUNK = 1024 * 1024
_SEGMENT_PREFIX, _SEGMENT_SUFFIX = "events-", ".jsonl"


def _segment_now() -> int:
    return int(time.time()) // SEGMENT_SECONDS


class FileBus(_Fanout):
    """Fan-out through append-only files: every process on this host, no server.

    A publish is one ``write`` of one line to the current segment, opened with
    ``O_APPEND``, so lines from many processes never interleave (on a local filesystem).
    An API process with clients polls the current and the previous segment (a publisher
    may still be finishing the old one) every ``poll_interval`` seconds and hands each new
    complete line to the clients of its application.
    """

    def __init__(self, directory: Path, queue_size: int, poll_interval: float) -> None:
        super().__init__(queue_size)
        self._directory = directory
        self._poll_interval = poll_interval
        self._fd: int | None = None
        self._fd_segment = -1
        self._tail: asyncio.Task[None] | None = None

    def _path(self, segment: int) -> Path:
        return self._directory / f"{_SEGMENT_PREFIX}{segment}{_SEGMENT_SUFFIX}"

    # Publishing.

    def publish(self, event: StreamEvent) -> None:
        line = (event.text + "\n").encode()
        if len(line) > MAX_EVENT_BYTES:
            self._warn("size", "live stream: event of %d bytes not published", len(line))
            return
        try:
            segment = _segment_now()
            if segment != self._fd_segment or self._fd is None:
                self._open(segment)
            assert self._fd is not None
            os.write(self._fd, line)
        except Exception as error:  # never the caller's problem: a delivery or a 202 goes on
            self._warn("write", "live stream: event not written to %s: %r", self._directory, error)

    def _open(self, segment: int) -> None:
        self._close_segment()
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self._fd = os.open(self._path(segment), flags, 0o600)
        self._fd_segment = segment
        self._remove_old(segment)

    def _remove_old(self, segment: int) -> None:
        for entry in os.scandir(self._directory):
            number = entry.name.removeprefix(_SEGMENT_PREFIX).removesuffix(_SEGMENT_SUFFIX)
            if number.isdigit() and int(number) < segment - KEEP_SEGMENTS:
                with suppress(FileNotFoundError):
                    os.unlink(entry.path)

    def _close_segment(self) -> None:
        if self._fd is not None:
            with suppress(OSError):
                os.close(self._fd)
            self._fd = None

    async def flush(self) -> None:
        pass  # every publish is already written

    # Subscribing.

    @asynccontextmanager
    async def subscribe(self, app_id: str) -> AsyncIterator[Subscription]:
        subscription = self._add(app_id)
        try:
            if self._tail is None or self._tail.done():
                # Positions are taken now: every line written from here on is read.
                self._tail = asyncio.get_running_loop().create_task(
                    self._follow(self._start_positions()), name="hookpost-stream-tail"
                )
            subscription.live = True
            yield subscription
        finally:
            self._remove(subscription)
            if not self._subscriptions and self._tail is not None:
                self._tail.cancel()
                self._tail = None

    def _size(self, segment: int) -> int:
        try:
            return self._path(segment).stat().st_size
        except FileNotFoundError:
            return 0

    def _start_positions(self) -> dict[int, int]:
        current = _segment_now()
        return {segment: self._size(segment) for segment in (current - 1, current)}

    async def _follow(self, positions: dict[int, int]) -> None:
        files: dict[int, int] = {}  # segment -> open descriptor
        try:
            while True:
                try:
                    lines, more = self._read_new(positions, files)
                except Exception as error:  # keep following: the next poll may do better
                    self._warn("tail", "live stream: reading %s failed: %r", self._directory, error)
                    lines, more = [], False
                for line in lines:
                    self._route(line)
                    await self._pace()
                await asyncio.sleep(0 if more else self._poll_interval)
        finally:
            for fd in files.values():
                os.close(fd)

    def _read_new(self, positions: dict[int, int], files: dict[int, int]) -> tuple[list[bytes], bool]:
        """The complete lines written since the last call, and whether more are waiting."""
        current = _segment_now()
        newest = max(positions, default=current)
        for segment in (current - 1, current):
            if segment not in positions:
                # A later segment starts empty; an earlier one (the clock went back) is old news.
                positions[segment] = 0 if segment > newest else self._size(segment)
        lines: list[bytes] = []
        more = False
        for segment in sorted(positions):
            fd = files.get(segment)
            if fd is None:
                try:
                    fd = files[segment] = os.open(self._path(segment), os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    fd = None
            data = b"" if fd is None else os.pread(fd, READ_CHUNK, positions[segment])
            complete = data[: data.rfind(b"\n") + 1]
            positions[segment] += len(complete)
            lines += complete.splitlines()
            if len(data) == READ_CHUNK:
                more = True
            elif segment < current - 1:
                # Past the grace period and read to the end: done with it.
                del positions[segment]
                if fd is not None:
                    os.close(files.pop(segment))
        return lines, more

    def _route(self, line: bytes) -> None:
        try:
            text = line.decode()
        except UnicodeDecodeError:
            return
        app_id = events.app_id_of(text)
        if app_id is not None:
            self._deliver(app_id, text)

    async def aclose(self) -> None:
        if self._tail is not None:
            self._tail.cancel()
            await asyncio.gather(self._tail, return_exceptions=True)
            self._tail = None
        await self._cancel_background()
        self._close_segment()


def create_event_bus(settings: Settings) -> EventBus:
    if settings.redis_url:
        return RedisBus(settings.redis_url, settings.stream_queue_size)
    return FileBus(settings.data_dir / "stream", settings.stream_queue_size, settings.stream_poll_interval)
