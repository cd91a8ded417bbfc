"""Warnings about recurring trouble, at most one line per kind per interval, with a count
of the ones held back: an outage must not turn into a log line per event or request."""

from __future__ import annotations

import logging
import time


class ThrottledWarnings:
    """Log each kind of trouble at most once per ``every`` seconds, counting the rest."""

    def __init__(self, logger: logging.Logger, every: float) -> None:
        self._logger = logger
        self._every = every
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self._every:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            message += f" ({suppressed} more since the last such message)"
        self._logger.warning(message, *args)
