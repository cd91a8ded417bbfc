"""Logging for the Celery processes (worker and scheduler), set up our way rather than Celery's.

Kept apart from ``observability.worker`` so the scheduler, which imports none of the
delivery code, gets it without importing the worker's metrics and database modules.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from hookpost.observability.logging import configure_logging
from hookpost.settings import get_settings


def _setup_logging(loglevel: Any = None, **_: Any) -> None:
    """Celery configures no logging of its own once a receiver handles this signal."""
    level = logging.getLevelName(loglevel) if isinstance(loglevel, int) else (loglevel or "INFO")
    configure_logging(get_settings().log_format or "plain", str(level))


def install() -> None:
    signals.setup_logging.connect(_setup_logging, weak=False, dispatch_uid="hookpost-logging")
