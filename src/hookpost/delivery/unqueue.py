"""Deliveries marked queued whose task never reached the broker (it was down).

Kept apart from the claim and record modules so the API's lifespan can use it without importing
the worker's side.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.storage.models import Delivery


async def unmark_queued(session: AsyncSession, delivery_ids: list[str]) -> None:
    """Undo the queued mark (``queued_until``) so the scheduler's next tick queues them,
    rather than once ``HOOKPOST_REQUEUE_AFTER`` has passed."""
    await session.execute(update(Delivery).where(Delivery.id.in_(delivery_ids)).values(queued_until=None))
    await session.commit()
