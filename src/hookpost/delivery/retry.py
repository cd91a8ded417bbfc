"""When the next attempt is due."""

from __future__ import annotations

import random
from datetime import datetime, timedelta


def next_attempt_at(schedule: list[float], attempts_made: int, now: datetime, jitter: float) -> datetime | None:
    """``schedule[n]`` is the wait before attempt ``n`` (0-based); None once it is spent."""
    if attempts_made >= len(schedule):
        return None
    delay = schedule[attempts_made]
    delay *= 1 + random.uniform(-jitter, jitter)
    return now + timedelta(seconds=delay)
