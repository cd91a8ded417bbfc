"""Progress of work the API started in the background (``endpoint.recover``)."""

from typing import Annotated

from fastapi import APIRouter, Query

from hookpost.api.dependencies import SessionDep
from hookpost.api.errors import error_responses
from hookpost.api.query import PageDep
from hookpost.background_tasks.schemas import BackgroundTaskOut, BackgroundTaskStatus, background_task_out
from hookpost.background_tasks.service import background_task_page, find_background_task
from hookpost.kit.errors import NotFound
from hookpost.kit.pagination import Ordering
from hookpost.kit.schemas import ListResponse

router = APIRouter(prefix="/background-task", tags=["Background Tasks"])


@router.get("", response_model=ListResponse[BackgroundTaskOut], responses=error_responses())
async def list_tasks(
    session: SessionDep,
    page: PageDep,
    status: Annotated[BackgroundTaskStatus | None, Query(description="Only tasks in this state")] = None,
    task: Annotated[str | None, Query(max_length=64, description="Only tasks of this kind")] = None,
    order: Ordering = Ordering.DESCENDING,
) -> ListResponse[BackgroundTaskOut]:
    """Newest first unless ``order=ascending``."""
    result = await background_task_page(session, page, order, status=status, kind=task)
    return result.response(background_task_out)


@router.get("/{task_id}", response_model=BackgroundTaskOut, responses=error_responses(NotFound))
async def get(task_id: str, session: SessionDep) -> BackgroundTaskOut:
    task = await find_background_task(session, task_id)
    if task is None:
        raise NotFound("Background task not found")
    return background_task_out(task)
