"""What an API process holds for its whole life (made and closed by ``hookpost.lifespan``).

Routers, pages and middleware read it through ``api.dependencies.StateDep`` or the ASGI
scope; it holds no logic of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hookpost.delivery.dispatcher import Dispatcher
from hookpost.delivery.ratelimit import RateLimiter
from hookpost.settings import Settings
from hookpost.stream.bus import EventBus


@dataclass(frozen=True)
class AppState:
    settings: Settings
    admin_token: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # The group commit of new messages (messages.writer): on PostgreSQL an engine of its own
    # in autocommit, each batch being one statement; elsewhere ``sessionmaker``.
    batch_sessionmaker: async_sessionmaker[AsyncSession]
    dispatcher: Dispatcher
    events: EventBus  # the live stream's bus: publish here, subscribe for WebSocket clients
    api_limiter: RateLimiter  # scoped tokens' requests per application (auth.policy.within_rate)


class LifespanState(TypedDict):
    hookpost: AppState
