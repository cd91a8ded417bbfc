from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.api.errors import Conflict
from hookpost.kit.ids import new_id
from hookpost.kit.time import utcnow
from hookpost.settings import Settings
from hookpost.storage.models import Delivery, Endpoint, Message, MessageStatus, TriggerType


async def resend_delivery(session: AsyncSession, message: Message, endpoint: Endpoint, settings: Settings) -> str:
    """Make the (message, endpoint) delivery due now as a manual attempt; commit; return its id.

    Works whether the message was delivered, failed, or never matched the endpoint; not once
    its payload is gone (expunged, or past retention).
    """
    if not message.payload:
        raise Conflict("The message's payload was deleted (expunged or past retention): nothing to send")
    now = utcnow()
    delivery = await session.scalar(
        select(Delivery).where(Delivery.msg_id == message.id, Delivery.endpoint_id == endpoint.id)
    )
    if delivery is None:
        delivery = Delivery(id=new_id("dlv"), app_id=message.app_id, msg_id=message.id, endpoint_id=endpoint.id)
        session.add(delivery)
    delivery.status = MessageStatus.PENDING
    delivery.trigger_type = TriggerType.MANUAL
    delivery.attempt_count = 0
    delivery.next_attempt_at = now
    delivery.queued_until = now + timedelta(seconds=settings.requeue_after)
    # Free at once, even if a worker is sending it now: that attempt's outcome no longer
    # decides the delivery's state (see delivery.service.deliver).
    delivery.lease_until = None
    await session.commit()
    return delivery.id
