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

from hookpost.settings import Settings
from hookpost.stream.bus.fanout import Subscription
from hookpost.stream.bus.file_bus import FileBus
from hookpost.stream.bus.interface import EventBus, EventPublisher, NullPublisher, StreamUnavailable
from hookpost.stream.bus.redis_bus import RedisBus

__all__ = [
    "EventBus",
    "EventPublisher",
    "FileBus",
    "NullPublisher",
    "RedisBus",
    "StreamUnavailable",
    "Subscription",
    "create_event_bus",
]


def create_event_bus(settings: Settings) -> EventBus:
    if settings.redis_url:
        return RedisBus(settings.redis_url, settings.stream_queue_size)
    return FileBus(settings.data_dir / "stream", settings.stream_queue_size, settings.stream_poll_interval)
