"""Export the catalogue (and the settings Svix has that Hookpost has too), import a catalogue."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.environment.schemas import EnvironmentIn, EnvironmentOut
from hookpost.event_types.schemas import EventTypeUpdate
from hookpost.event_types.service import all_event_types, event_type_out, upsert_event_type
from hookpost.kit.time import utcnow
from hookpost.settings import Settings


def exported_settings(settings: Settings) -> dict[str, Any]:
    """Svix's environment settings, by Svix's names, from the Hookpost settings that mean the same."""
    return {
        "displayName": settings.portal_product_name,
        "customLogoUrl": settings.portal_logo_url or None,
        "customColor": settings.portal_accent_color,
        # Hookpost always disables an endpoint after HOOKPOST_DISABLE_AFTER of failures.
        "disableEndpointOnFailure": True,
    }


async def export_environment(session: AsyncSession, settings: Settings) -> EnvironmentOut:
    event_types = await all_event_types(session, include_archived=True)
    return EnvironmentOut(
        created_at=utcnow(),
        event_types=[event_type_out(event_type) for event_type in event_types],
        settings=exported_settings(settings),
        connectors=[],
    )


async def import_environment(session: AsyncSession, data: EnvironmentIn) -> None:
    """Create or update each event type by name; nothing is deleted (as Svix)."""
    for event_type in data.event_types:
        update = EventTypeUpdate.model_validate(event_type.model_dump(exclude={"name", "feature_flag"}))
        await upsert_event_type(session, event_type.name, update)
