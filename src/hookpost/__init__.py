"""Hookpost: self-hosted webhook delivery."""

import sys

__version__ = "0.1.0"

# httpx imports its command line client (click, rich, pygments) whenever they are installed,
# as they are for hookpost's own CLI; no hookpost process runs it, and every one that sends
# or receives HTTP (API workers, delivery workers, the scheduler) would carry it: 3-8 MB each.
# None in sys.modules makes that import fail, and httpx falls back to a stub.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
