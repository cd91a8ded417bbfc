"""The app portal at ``/portal``: one application's endpoints and delivery log, for the operator's
customers, opened from a link ``POST /api/v1/auth/app-portal-access/{app_id}`` mints.

Templates and its script live beside this module and ship inside the wheel; it shares the
console's stylesheet, partials, session and CSRF kit (``hookpost.pages``, kit.web_session), not its
session: a portal session is its own cookie, scoped to one application.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from hookpost.portal.destinations import router as destinations
from hookpost.portal.router import router
from hookpost.portal.stream import router as stream
from hookpost.portal.web import PORTAL_PATH, STATIC_DIR


def install_portal(app: FastAPI) -> None:
    """Serve the portal at /portal, its live stream, and its files (with the shared stylesheet) at /portal/static."""
    static = StaticFiles(directory=STATIC_DIR, packages=[("hookpost.pages", "static")])
    app.mount(f"{PORTAL_PATH}/static", static, name="portal-static")
    app.include_router(router)
    app.include_router(destinations)
    app.include_router(stream)  # its pages' live stream, where its session cookie goes
