"""The destination a route's ``{destination_id}`` names, within its application, or a 404."""

from typing import Annotated

from fastapi import Depends, Path

from hookpost.api.dependencies import SessionDep
from hookpost.applications.dependencies import ApplicationDep
from hookpost.destinations.service import find_destination
from hookpost.kit.errors import NotFound
from hookpost.storage.models import Destination

DestinationIdPath = Annotated[str, Path(description="Destination id or uid")]


async def get_destination(
    session: SessionDep, application: ApplicationDep, destination_id: DestinationIdPath
) -> Destination:
    destination = await find_destination(session, application, destination_id)
    if destination is None:
        raise NotFound("Destination not found")
    return destination


DestinationDep = Annotated[Destination, Depends(get_destination)]
