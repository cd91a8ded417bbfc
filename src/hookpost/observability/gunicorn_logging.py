"""Gunicorn's own log lines (the master's and the workers') as JSON when asked to.

Used as ``logger_class`` by ``hookpost.process.gunicorn_conf``. Uvicorn workers under
Gunicorn write through these same handlers, so their access lines come out as JSON too.
"""

from __future__ import annotations

import os

from gunicorn.glogging import Logger  # type: ignore[import-untyped]

from hookpost.observability.logging import FORMAT_VARIABLE, JsonFormatter


class GunicornLogger(Logger):  # type: ignore[misc]
    def setup(self, cfg: object) -> None:
        super().setup(cfg)
        if os.environ.get(FORMAT_VARIABLE, "").strip().lower() == "json":
            formatter = JsonFormatter()
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(formatter)
