"""The endpoint a route's ``{endpoint_id}`` names, within its application, or a 404."""

from typing import Annotated

from fastapi import Depends, Path
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.api.dependencies import SessionDep
from hookpost.applications.dependencies import ApplicationDep
from hookpost.endpoints.service import find_endpoint
from hookpost.kit.errors import NotFound
from hookpost.storage.models import Application, Endpoint

EndpointIdPath = Annotated[str, Path(description="Endpoint id or uid")]


async def endpoint_or_404(
    session: AsyncSession, application: Application, endpoint_id: str, detail: str = "Endpoint not found"
) -> Endpoint:
    endpoint = await find_endpoint(session, application, endpoint_id)
    if endpoint is None:
        raise NotFound(detail)
    return endpoint


async def get_endpoint(session: SessionDep, application: ApplicationDep, endpoint_id: EndpointIdPath) -> Endpoint:
    return await endpoint_or_404(session, application, endpoint_id)


EndpointDep = Annotated[Endpoint, Depends(get_endpoint)]
