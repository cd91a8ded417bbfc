"""Work the API started in the background (``endpoint.recover``), and its progress."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.storage.models import BackgroundTask


async def find_background_task(session: AsyncSession, task_id: str) -> BackgroundTask | None:
    return await session.get(BackgroundTask, task_id)
