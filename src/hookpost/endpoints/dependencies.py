"""The endpoint a route's ``{endpoint_id}`` names, within its application, or a 404."""

from typing import Annotated

from fastapi import Depends, Path

from hookpost.api.dependencies import SessionDep
from hookpost.applications.dependencies import ApplicationDep
from hookpost.endpoints.service import find_endpoint
from hookpost.kit.errors import NotFound
from hookpost.storage.models import Endpoint


async def get_endpoint(
    session: SessionDep,
    application: ApplicationDep,
    endpoint_id: Annotated[str, Path(description="Endpoint id or uid")],
) -> Endpoint:
    endpoint = await find_endpoint(session, application, endpoint_id)
    if endpoint is None:
        raise NotFound("Endpoint not found")
    return endpoint


EndpointDep = Annotated[Endpoint, Depends(get_endpoint)]
