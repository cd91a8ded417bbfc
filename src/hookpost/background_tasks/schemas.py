import enum
from typing import Any

from hookpost.kit.schemas import Schema, UtcDatetime


class BackgroundTaskStatus(enum.StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class BackgroundTaskOut(Schema):
    id: str
    status: BackgroundTaskStatus
    task: str
    data: dict[str, Any]
    updated_at: UtcDatetime
