"""The message a route's ``{msg_id}`` names, within its application, or a 404."""

from typing import Annotated

from fastapi import Depends, Path

from hookpost.api.dependencies import SessionDep
from hookpost.applications.dependencies import ApplicationDep
from hookpost.kit.errors import NotFound
from hookpost.messages.service import find_message
from hookpost.storage.models import Message


async def get_message(
    session: SessionDep,
    application: ApplicationDep,
    msg_id: Annotated[str, Path(description="Message id or eventId")],
) -> Message:
    message = await find_message(session, application, msg_id)
    if message is None:
        raise NotFound("Message not found")
    return message


MessageDep = Annotated[Message, Depends(get_message)]
