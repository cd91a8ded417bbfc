"""Where a destination begins in its application's messages.

A module of its own, not in ``service.py``: the scheduler's retention needs it, and the
service loads the endpoints' and event types' validation (7 MB) that the scheduler never uses.
"""

from __future__ import annotations

from hookpost.kit.ids import created_ms, first_id_at
from hookpost.storage.models import Destination


def start_position(destination: Destination) -> str:
    """Just before the first message accepted after the destination was created (message ids
    begin with their time)."""
    return first_id_at("msg", created_ms(destination.id))
