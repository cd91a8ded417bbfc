"""Usage statistics over every application (Svix's ``statistics`` API), as background tasks."""

from fastapi import APIRouter, status

from hookpost.api.dependencies import SessionDep
from hookpost.api.errors import error_responses
from hookpost.statistics.schemas import AggregateEventTypesOut, AppUsageStatsIn, AppUsageStatsOut
from hookpost.statistics.service import start_application_stats, start_event_type_aggregate

router = APIRouter(prefix="/stats/usage", tags=["Statistics"])


@router.post("/app", status_code=status.HTTP_202_ACCEPTED, response_model=AppUsageStatsOut, responses=error_responses())
async def aggregate_app_stats(data: AppUsageStatsIn, session: SessionDep) -> AppUsageStatsOut:
    """Count, in the background, each application's attempts in the window's hours.

    The result is the task's ``data.appStats`` at ``GET /api/v1/background-task/{id}``.
    """
    task, unresolved = await start_application_stats(session, data.since, data.until, data.app_ids)
    await session.flush()
    return AppUsageStatsOut(
        id=task.id, status=task.status, task=task.kind, updated_at=task.updated_at, unresolved_app_ids=unresolved
    )


@router.put(
    "/event-types",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AggregateEventTypesOut,
    responses=error_responses(),
)
async def aggregate_event_types(session: SessionDep) -> AggregateEventTypesOut:
    """List, in the background, the event types each application's endpoints subscribe to.

    The result is the task's ``data.event_types`` at ``GET /api/v1/background-task/{id}``.
    """
    task = start_event_type_aggregate(session)
    await session.flush()
    return AggregateEventTypesOut(id=task.id, status=task.status, task=task.kind, updated_at=task.updated_at)
