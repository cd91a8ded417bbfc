"""The operators' console at ``/console``: server-rendered pages over the API's services.

Its page templates live beside this module, the partials, stylesheet and script it shares
with the app portal in ``hookpost.pages``; all ship inside the wheel. The one front-end
library, htmx, is vendored in ``pages/static/`` with its licence (version in
``pages/static/VENDORED.md``), so the pages work offline and need no build step.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from hookpost.console import destinations, event_type_pages, operational_pages, task_pages
from hookpost.console.router import router
from hookpost.pages.web import STATIC_DIR


async def _root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=307)


def install_console(app: FastAPI) -> None:
    """Serve the console at /console, its files at /console/static, and send / there."""
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR, packages=None), name="console-static")
    app.include_router(router)
    for more in (destinations, event_type_pages, task_pages, operational_pages):
        app.include_router(more.router)
    app.add_api_route("/", _root, methods=["GET"], include_in_schema=False)
