"""Hookpost's own application, apart from the code that serves it: the delivery worker reads
this id without importing the API (FastAPI costs a worker process about 9 MB)."""

from __future__ import annotations

# Hookpost's own application: it holds the operational webhook endpoints (hookpost.operational)
# and their events, and the application API never shows it.
OPERATIONAL_APP_ID = "app_hookpost_operational"
