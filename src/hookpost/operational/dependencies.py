"""The operational application and the operational-webhook endpoint a path names (or 404),
for the API's routes and the console's pages alike."""

from typing import Annotated

from fastapi import Depends

from hookpost.api.dependencies import SessionDep
from hookpost.endpoints.dependencies import EndpointIdPath, endpoint_or_404
from hookpost.operational.service import operational_application
from hookpost.storage.models import Application, Endpoint


async def _application(session: SessionDep) -> Application:
    return await operational_application(session)


OperationalAppDep = Annotated[Application, Depends(_application)]


async def _endpoint(session: SessionDep, application: OperationalAppDep, endpoint_id: EndpointIdPath) -> Endpoint:
    return await endpoint_or_404(session, application, endpoint_id, "Operational webhook endpoint not found")


OperationalEndpointDep = Annotated[Endpoint, Depends(_endpoint)]
