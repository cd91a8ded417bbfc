"""What a worker's delivery code shares besides the database rows: settings, pools, limiter, stream."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import lru_cache

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookpost.delivery.ratelimit import RateLimiter
from hookpost.settings import Settings
from hookpost.stream.bus import EventPublisher, NullPublisher


@lru_cache(maxsize=4096)
def origin_of(url: str) -> str:
    """The server a URL's requests go to: scheme, host and port (the URL itself if it does
    not parse; sending it then fails on its own, as that delivery's attempt)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return url
    return f"{parsed.scheme}://{parsed.host}:{parsed.port}"


@dataclass(frozen=True)
class DeliveryContext:
    """What a worker needs besides the database: settings, its pooled HTTP client, the limiter."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    limiter: RateLimiter
    events: EventPublisher = field(default_factory=NullPublisher)  # the live stream
    # Sends in flight per destination (scheme, host, port), made on first use.
    destination_slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)

    def destination_slot(self, url: str) -> asyncio.Semaphore:
        """Bounds this process's concurrent requests to the URL's server: a batch of many
        deliveries to one receiver must not open more connections than it can accept."""
        origin = origin_of(url)
        slot = self.destination_slots.get(origin)
        if slot is None:
            slot = self.destination_slots[origin] = asyncio.Semaphore(self.settings.destination_concurrency)
        return slot
