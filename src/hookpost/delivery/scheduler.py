"""The Celery app the scheduler (beat) runs: the worker's broker and schedule, without the tasks.

Beat publishes tasks by name and runs none of them; importing the delivery code (SQLAlchemy,
httpx, the stream) would cost the scheduler process about half its memory for nothing.
"""

from __future__ import annotations

from hookpost.delivery.celery_app import create_celery
from hookpost.observability import celery_logging
from hookpost.settings import get_settings

celery_app = create_celery(get_settings(), with_tasks=False)
celery_logging.install()
