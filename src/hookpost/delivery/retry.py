"""When the next attempt is due: the schedule, and what a receiver's Retry-After may change."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from http import HTTPStatus

from hookpost.delivery.sender import AttemptResult
from hookpost.kit.time import as_utc
from hookpost.settings import Settings

RETRY_AFTER_STATUSES = frozenset({HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.SERVICE_UNAVAILABLE})


def next_attempt_at(schedule: list[float], attempts_made: int, now: datetime, jitter: float) -> datetime | None:
    """``schedule[n]`` is the wait before attempt ``n`` (0-based); None once it is spent."""
    if attempts_made >= len(schedule):
        return None
    delay = schedule[attempts_made]
    delay *= 1 + random.uniform(-jitter, jitter)
    return now + timedelta(seconds=delay)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A Retry-After header in seconds, from either of its forms (delta-seconds, HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (as_utc(when) - now).total_seconds())


def plan_retry(settings: Settings, attempts_made: int, result: AttemptResult, now: datetime) -> datetime | None:
    """When to try again after a failure; None once the schedule is spent.

    A 429 or 503 with Retry-After is honoured, capped at ``retry_after_max``, and never
    makes the retry sooner than the schedule's own next step.
    """
    scheduled = next_attempt_at(settings.retry_schedule, attempts_made, now, settings.retry_jitter)
    if scheduled is None:
        return None
    if result.status_code in RETRY_AFTER_STATUSES:
        asked = retry_after_seconds(result.retry_after, now)
        if asked is not None:
            return max(scheduled, now + timedelta(seconds=min(asked, settings.retry_after_max)))
    return scheduled
