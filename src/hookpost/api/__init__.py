"""The HTTP API (``hookpost.api.app:create_app``)."""

import sys

# httpx imports its command line client (click, rich, pygments: 8 MB of an API worker's RSS)
# whenever they are installed, as they are for hookpost's own CLI; the API never runs it.
# None in sys.modules makes that import fail, and httpx falls back to a stub.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
