"""``/api/v1/environment``: Svix's environment export and import (the admin's alone)."""

from fastapi import APIRouter, status

from hookpost.api.dependencies import SessionDep, StateDep
from hookpost.api.errors import error_responses
from hookpost.environment.schemas import EnvironmentIn, EnvironmentOut
from hookpost.environment.service import export_environment, import_environment

router = APIRouter(prefix="/environment", tags=["Environment"])


@router.post("/export", response_model=EnvironmentOut, responses=error_responses())
async def export(session: SessionDep, state: StateDep) -> EnvironmentOut:
    """Every event type (schemas, feature flags, archived ones too) and the settings Svix has that Hookpost has."""
    return await export_environment(session, state.settings)


@router.post("/import", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses())
async def import_(data: EnvironmentIn, session: SessionDep) -> None:
    """Create or update the event types named; nothing is deleted, settings are not applied."""
    await import_environment(session, data)
