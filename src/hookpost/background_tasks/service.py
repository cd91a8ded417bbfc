"""Work the API started in the background (``endpoint.recover``), and its progress."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.background_tasks.schemas import BackgroundTaskStatus
from hookpost.kit.pagination import Ordering, Page, PageParams, paginate
from hookpost.storage.models import BackgroundTask


async def find_background_task(session: AsyncSession, task_id: str) -> BackgroundTask | None:
    return await session.get(BackgroundTask, task_id)


async def background_task_page(
    session: AsyncSession,
    page: PageParams,
    order: Ordering,
    *,
    status: BackgroundTaskStatus | None = None,
    kind: str | None = None,
) -> Page[BackgroundTask]:
    """A page of tasks, optionally only those in one state or of one kind."""
    query = select(BackgroundTask)
    if status is not None:
        query = query.where(BackgroundTask.status == status)
    if kind is not None:
        query = query.where(BackgroundTask.kind == kind)
    return await paginate(session, query, BackgroundTask.id, page, order)
