from __future__ import annotations

from pydantic import Field, model_validator

from hookpost.background_tasks.schemas import BackgroundTaskStatus
from hookpost.kit.schemas import Schema, UtcDatetime


class EndpointAttemptStats(Schema):
    """Attempts made to the endpoint in the window's hours, by outcome; ``canceled``: its
    deliveries canceled (expunged before they were sent), created in those hours."""

    success: int
    fail: int
    canceled: int


class AppUsageStatsIn(Schema):
    since: UtcDatetime = Field(description="Count attempts from this time (rounded down to the hour)")
    until: UtcDatetime = Field(description="... up to this time (its hour included)")
    app_ids: list[str] | None = Field(
        default=None, description="Only these applications (ids or uids); default: every application"
    )

    @model_validator(mode="after")
    def _window_forwards(self) -> AppUsageStatsIn:
        if self.until < self.since:
            raise ValueError("until is before since")
        return self


class AppUsageStatsOut(Schema):
    id: str
    status: BackgroundTaskStatus
    task: str
    updated_at: UtcDatetime
    unresolved_app_ids: list[str]


class AggregateEventTypesOut(Schema):
    id: str
    status: BackgroundTaskStatus
    task: str
    updated_at: UtcDatetime
