from fastapi import APIRouter, status

from hookpost.api.dependencies import SessionDep
from hookpost.api.errors import error_responses
from hookpost.applications.dependencies import ApplicationDep
from hookpost.background_tasks.schemas import BackgroundTaskOut, background_task_out
from hookpost.kit.errors import NotFound
from hookpost.purge.schemas import BulkExpungeIn, BulkExpungeOut
from hookpost.purge.service import bulk_expunge, start_expunge_all

router = APIRouter(prefix="/app/{app_id}/msg", tags=["Message"])
_NOT_FOUND = error_responses(NotFound)


@router.post("/bulk-expunge", response_model=BulkExpungeOut, responses=_NOT_FOUND)
async def expunge_some(application: ApplicationDep, data: BulkExpungeIn, session: SessionDep) -> BulkExpungeOut:
    """Blank the payloads of these messages now; a delivery still pending for one is canceled."""
    return BulkExpungeOut(results=await bulk_expunge(session, application, data.ids))


@router.post(
    "/expunge-all-contents",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BackgroundTaskOut,
    responses=_NOT_FOUND,
)
async def expunge_all(application: ApplicationDep, session: SessionDep) -> BackgroundTaskOut:
    """Blank, in the background, the payload of every message the application has so far.

    Follow its progress at ``GET /api/v1/background-task/{id}``.
    """
    task = start_expunge_all(session, application)
    await session.flush()
    return background_task_out(task)
