"""Hookpost's own application and its endpoints: an application's endpoints, with two rules more."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.endpoints.schemas import EndpointIn, EndpointPatch, EndpointUpdate
from hookpost.endpoints.service import create_endpoint, update_endpoint, upsert_endpoint
from hookpost.kit.errors import Conflict, InvalidInput
from hookpost.kit.unsupported import NOT_SUPPORTED
from hookpost.operational.ids import OPERATIONAL_APP_ID
from hookpost.settings import Settings
from hookpost.storage.models import Application, Endpoint


async def operational_application(session: AsyncSession) -> Application:
    """Hookpost's own application, made on first use."""
    application = await session.get(Application, OPERATIONAL_APP_ID)
    if application is not None:
        return application
    application = Application(id=OPERATIONAL_APP_ID, name="Hookpost operational webhooks", metadata_={})
    session.add(application)
    try:
        await session.flush()
    except IntegrityError as exc:  # made by a concurrent request just now
        await session.rollback()
        raise Conflict("Operational webhooks are being set up by another request; try again") from exc
    return application


def _refuse_channels(data: EndpointIn | EndpointUpdate | EndpointPatch) -> None:
    """Svix's operational endpoints have no ``channels``, nor do its events: refused, not ignored."""
    if data.channels is not None:
        detail = f"{NOT_SUPPORTED}: operational events have no channels"
        raise InvalidInput(("body", "channels"), detail, "not_supported")


def _endpoint_settings(settings: Settings) -> Settings:
    """Operational endpoints filter on Hookpost's own event types, which the catalogue does not hold."""
    return settings.model_copy(update={"require_known_event_types": False})


async def create_operational_endpoint(
    session: AsyncSession, application: Application, data: EndpointIn, settings: Settings
) -> Endpoint:
    _refuse_channels(data)
    return await create_endpoint(session, application, data, _endpoint_settings(settings), feature_flags=None)


async def upsert_operational_endpoint(
    session: AsyncSession, application: Application, endpoint_id: str, data: EndpointUpdate, settings: Settings
) -> tuple[Endpoint, bool]:
    _refuse_channels(data)
    settings = _endpoint_settings(settings)
    return await upsert_endpoint(session, application, endpoint_id, data, settings, feature_flags=None)


async def update_operational_endpoint(
    session: AsyncSession, endpoint: Endpoint, data: EndpointPatch, settings: Settings
) -> Endpoint:
    """A change to some of its fields (the console's enable and disable)."""
    _refuse_channels(data)
    return await update_endpoint(session, endpoint, data, _endpoint_settings(settings), feature_flags=None)
