"""The event type a route's ``{event_type_name}`` names, or a 404."""

from typing import Annotated

from fastapi import Depends, Path

from hookpost.api.dependencies import SessionDep
from hookpost.kit.errors import NotFound
from hookpost.storage.models import EventType


async def get_event_type(
    session: SessionDep, event_type_name: Annotated[str, Path(description="The event type's name")]
) -> EventType:
    event_type = await session.get(EventType, event_type_name)
    if event_type is None:
        raise NotFound("Event type not found")
    return event_type


EventTypeDep = Annotated[EventType, Depends(get_event_type)]
