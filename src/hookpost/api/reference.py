"""The interactive API reference, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), with no CDN.

FastAPI's own pages load their scripts, styles and fonts from public CDNs, so they are blank on
a network without internet. The same pages here load Swagger UI's and ReDoc's files from the
fastapi-offline package, served under ``/docs/assets``.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PREFIX = "/docs/assets"
ASSETS_DIR = str(files("fastapi_offline") / "static")


def install_reference(app: FastAPI) -> None:
    """Serve /docs and /redoc from local files; the app must be made with ``docs_url=None, redoc_url=None``."""
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"
    title = app.title

    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} API reference",
            oauth2_redirect_url=oauth2_redirect_url,
            swagger_js_url=f"{ASSETS_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PREFIX}/favicon.png",
        )

    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} API reference",
            redoc_js_url=f"{ASSETS_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PREFIX}/favicon.png",
            with_google_fonts=False,
        )

    app.mount(ASSETS_PREFIX, StaticFiles(directory=ASSETS_DIR), name="reference-assets")
    app.add_api_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route(oauth2_redirect_url, oauth2_redirect, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
