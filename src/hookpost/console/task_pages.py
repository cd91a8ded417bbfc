"""The console's background task pages (GET /api/v1/background-task, and one task): read only.

Tasks are started where their work is asked for (an endpoint's recover form; the API's replay,
purge and statistics operations), not here.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from hookpost.api.dependencies import SessionDep
from hookpost.background_tasks.kinds import RECOVER
from hookpost.background_tasks.schemas import BackgroundTaskStatus, background_task_out
from hookpost.background_tasks.service import background_task_page, find_background_task
from hookpost.background_tasks.steps import STEPS
from hookpost.console.web import ConsoleRoute, render, require_admin_session
from hookpost.kit.errors import NotFound
from hookpost.kit.pagination import Ordering, PageParams
from hookpost.pages.forms import Iterator
from hookpost.pages.views import PAGE_SIZE
from hookpost.storage.models import BackgroundTask

router = APIRouter(
    prefix="/console/background-task",
    route_class=ConsoleRoute,
    dependencies=[Depends(require_admin_session)],
    include_in_schema=False,  # pages, not the Svix-compatible API the document describes
)

KINDS = sorted([RECOVER, *STEPS])
STATUSES = [status.value for status in BackgroundTaskStatus]
SUMMARY_ITEMS = 4  # of a task's data, in the list; its page shows all of it


def result_of(task: BackgroundTask) -> dict[str, Any]:
    """What a task reports (its data as the API shows it: without its internal cursor)."""
    return background_task_out(task).data


def summary(task: BackgroundTask) -> str:
    """A task's data in a line: its first few ``key: value`` pairs, scalars only."""
    parts = [f"{key}: {value}" for key, value in result_of(task).items() if isinstance(value, str | int | float | bool)]
    more = " …" if len(parts) > SUMMARY_ITEMS else ""
    return ", ".join(parts[:SUMMARY_ITEMS]) + more


@router.get("")
async def background_tasks(
    request: Request,
    session: SessionDep,
    status: Annotated[str, Query(max_length=16)] = "",
    task: Annotated[str, Query(max_length=64)] = "",
    iterator: Iterator = None,
) -> Response:
    """GET /api/v1/background-task, newest first, filtered by status and kind (empty: any)."""
    wanted_status = BackgroundTaskStatus(status) if status in STATUSES else None
    wanted_kind = task if task in KINDS else None
    result = await background_task_page(
        session, PageParams(PAGE_SIZE, iterator), Ordering.DESCENDING, status=wanted_status, kind=wanted_kind
    )
    context = {
        "page": result,
        "kinds": KINDS,
        "statuses": STATUSES,
        "status": wanted_status or "",
        "kind": wanted_kind or "",
        "summary": summary,
    }
    return render(request, "background_tasks.html", context)


@router.get("/{task_id}")
async def background_task(request: Request, session: SessionDep, task_id: str) -> Response:
    """GET /api/v1/background-task/{task_id}; polled while it runs."""
    found = await find_background_task(session, task_id)
    if found is None:
        raise NotFound("Background task not found")
    return render(request, "background_task.html", {"task": found, "result": result_of(found)})
