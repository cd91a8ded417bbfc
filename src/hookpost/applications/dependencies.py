"""The application a route's ``{app_id}`` names, or a 404."""

from typing import Annotated

from fastapi import Depends, Path

from hookpost.api.dependencies import SessionDep
from hookpost.applications.service import find_application
from hookpost.kit.errors import NotFound
from hookpost.storage.models import Application


async def get_application(
    session: SessionDep, app_id: Annotated[str, Path(description="Application id or uid")]
) -> Application:
    application = await find_application(session, app_id)
    if application is None:
        raise NotFound("Application not found")
    return application


ApplicationDep = Annotated[Application, Depends(get_application)]
