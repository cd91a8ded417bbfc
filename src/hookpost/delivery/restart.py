"""A delivery back on a fresh schedule: what a resend, a bulk replay and a recover share."""

from __future__ import annotations

from datetime import datetime

from hookpost.statistics.counts import Counts
from hookpost.storage.models import Delivery, MessageStatus, TriggerType


def restart_delivery(
    delivery: Delivery, trigger: TriggerType, now: datetime, counts: Counts, *, queued_until: datetime | None = None
) -> None:
    """Make the delivery pending and due ``now``, with its whole retry schedule ahead of it.

    Free of any lease at once: a worker sending it right now records its attempt but no
    longer decides the delivery's state (``delivery.record``). ``queued_until`` is for a
    caller that publishes the delivery itself; otherwise the scheduler queues it. The delivery
    leaves its state's count in ``counts``, which the caller stores (``store_counts``).
    """
    if delivery.created_at is not None:  # None: a delivery made just now, not yet counted anywhere
        counts.reopened(delivery.app_id, delivery.endpoint_id, delivery.created_at, delivery.status)
    delivery.status = MessageStatus.PENDING
    delivery.trigger_type = trigger
    delivery.attempt_count = 0
    delivery.next_attempt_at = now
    delivery.queued_until = queued_until
    delivery.lease_until = None
