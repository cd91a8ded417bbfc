"""A service the process depends on (the database, Redis) failing for a while: told in a
few log lines however long it lasts, with pauses that grow between tries."""

from __future__ import annotations

import logging
import time

FIRST_PAUSE = 1.0  # seconds before the first retry
LONGEST_PAUSE = 5.0  # seconds: the most a recovered service waits to be used again
WARN_EVERY = 60.0  # seconds between two log lines about the same failure


class Outage:
    """How one kind of work (``what``) is faring against a service it needs.

    ``failed`` logs the first failure, then at most one line per ``warn_every`` seconds
    with the count since, and returns how long to pause before the next try (doubling
    from ``first_pause`` to ``longest_pause``). ``recovered`` logs, once, how long it
    lasted. An ``expected`` failure (the service is unreachable) is one line; any other
    comes with its traceback, since it may be a bug.
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        first_pause: float = FIRST_PAUSE,
        longest_pause: float = LONGEST_PAUSE,
        warn_every: float = WARN_EVERY,
    ) -> None:
        self._logger = logger
        self._what = what
        self._first_pause = first_pause
        self._longest_pause = longest_pause
        self._warn_every = warn_every
        self._since: float | None = None  # monotonic time of the first failure in a row
        self._failures = 0
        self._last_warning = 0.0
        self._pause = first_pause

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException, *, expected: bool = True) -> float:
        """Note a failure; return the seconds to pause before trying again."""
        now = time.monotonic()
        self._failures += 1
        if self._since is None:
            self._since = self._last_warning = now
            self._pause = self._first_pause
            self._logger.warning(
                "%s failed, and is tried again until it works: %s: %s",
                self._what,
                type(error).__name__,
                error,
                exc_info=None if expected else error,
            )
        else:
            self._pause = min(self._pause * 2, self._longest_pause)
            if now - self._last_warning >= self._warn_every:
                self._last_warning = now
                self._logger.warning(
                    "%s still failing after %.0f s (%d tries): %s: %s",
                    self._what,
                    now - self._since,
                    self._failures,
                    type(error).__name__,
                    error,
                    exc_info=None if expected else error,
                )
        return self._pause

    def recovered(self) -> None:
        """Note a success: after failures, say how long they lasted."""
        if self._since is None:
            return
        self._logger.info(
            "%s works again after %.1f s (%d failed tries)", self._what, time.monotonic() - self._since, self._failures
        )
        self._since = None
        self._failures = 0
