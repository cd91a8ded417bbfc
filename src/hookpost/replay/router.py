from fastapi import APIRouter, status

from hookpost.api.dependencies import SessionDep
from hookpost.api.errors import error_responses
from hookpost.background_tasks.schemas import BackgroundTaskOut, background_task_out
from hookpost.endpoints.dependencies import EndpointDep
from hookpost.kit.errors import NotFound
from hookpost.replay.schemas import BulkReplayIn, ReplayIn
from hookpost.replay.service import BULK_REPLAY, REPLAY_MISSING, start_replay

router = APIRouter(prefix="/app/{app_id}/endpoint/{endpoint_id}", tags=["Endpoint"])
_NOT_FOUND = error_responses(NotFound)


@router.post(
    "/replay-missing", status_code=status.HTTP_202_ACCEPTED, response_model=BackgroundTaskOut, responses=_NOT_FOUND
)
async def replay_missing(endpoint: EndpointDep, data: ReplayIn, session: SessionDep) -> BackgroundTaskOut:
    """Send the endpoint, in the background, each message of the window it wants and never got.

    Follow its progress at ``GET /api/v1/background-task/{id}``.
    """
    task = start_replay(session, endpoint, REPLAY_MISSING, data)
    await session.flush()
    return background_task_out(task)


@router.post(
    "/bulk-replay", status_code=status.HTTP_202_ACCEPTED, response_model=BackgroundTaskOut, responses=_NOT_FOUND
)
async def bulk_replay(endpoint: EndpointDep, data: BulkReplayIn, session: SessionDep) -> BackgroundTaskOut:
    """Send the endpoint again, in the background, the messages of the window it was sent
    (delivered or failed) that match the filters.

    Follow its progress at ``GET /api/v1/background-task/{id}``.
    """
    task = start_replay(session, endpoint, BULK_REPLAY, data)
    await session.flush()
    return background_task_out(task)
