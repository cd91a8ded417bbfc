import enum
from typing import Any

from hookpost.kit.schemas import Schema, UtcDatetime
from hookpost.storage.models import BackgroundTask


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


def background_task_out(task: BackgroundTask) -> BackgroundTaskOut:
    public = {key: value for key, value in task.data.items() if key != "cursor"}
    return BackgroundTaskOut(
        id=task.id, status=BackgroundTaskStatus(task.status), task=task.kind, data=public, updated_at=task.updated_at
    )
