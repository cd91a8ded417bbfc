"""The background task kinds besides recover, each advanced one bounded step per run."""

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.purge.service import PURGE_CONTENT, expunge_all_step
from hookpost.replay.service import BULK_REPLAY, REPLAY_MISSING, bulk_replay_step, replay_missing_step
from hookpost.statistics.service import (
    APPLICATION_STATS,
    EVENT_TYPE_AGGREGATE,
    application_stats_step,
    event_type_aggregate_step,
)
from hookpost.storage.models import BackgroundTask

Step = Callable[[AsyncSession, BackgroundTask], Awaitable[None]]

STEPS: dict[str, Step] = {
    REPLAY_MISSING: replay_missing_step,
    BULK_REPLAY: bulk_replay_step,
    PURGE_CONTENT: expunge_all_step,
    APPLICATION_STATS: application_stats_step,
    EVENT_TYPE_AGGREGATE: event_type_aggregate_step,
}
