"""The FastAPI application factory, ``hookpost.app:create_app``: the one module that knows every
router, page and middleware, and puts them together (``api/`` is the toolkit they use)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from fastapi.telemetry import TelemetryConfig

from hookpost import __version__
from hookpost.api import health
from hookpost.api.edge import ApiEdge
from hookpost.api.errors import install_error_handlers
from hookpost.api.openapi_links import add_links
from hookpost.api.reference import install_reference
from hookpost.applications.router import router as applications
from hookpost.attempts.router import router as attempts
from hookpost.auth.middleware import AuthenticateBeforeBody
from hookpost.auth.policy import authorize
from hookpost.auth.router import router as auth
from hookpost.background_tasks.router import router as background_tasks
from hookpost.console import install_console
from hookpost.destinations.router import poller_router as pollers
from hookpost.destinations.router import router as destinations
from hookpost.endpoints.router import router as endpoints
from hookpost.environment.router import router as environment
from hookpost.event_types.router import router as event_types
from hookpost.idempotency.openapi import document_idempotency
from hookpost.lifespan import make_lifespan
from hookpost.messages.hot_route import HotMessageRoute
from hookpost.messages.router import router as messages
from hookpost.observability import tracing
from hookpost.observability.logging import configure_logging
from hookpost.observability.router import router as operations
from hookpost.operational import events as operational_events
from hookpost.operational.router import router as operational
from hookpost.portal import install_portal
from hookpost.purge.router import router as purge
from hookpost.replay.router import router as replay
from hookpost.settings import Settings, get_settings
from hookpost.statistics.router import router as statistics
from hookpost.stream.router import router as stream


class MissingAdminToken(RuntimeError):
    pass


API_PREFIX = "/api/v1"
_TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    operational_events.install()
    if settings.log_format is not None:
        configure_logging(settings.log_format)
    tracing.setup(settings, "api")  # before the engines are made: their statements are traced too
    admin_token = settings.load_admin_token(create=False)
    if admin_token is None:
        raise MissingAdminToken(
            "No admin token: set HOOKPOST_ADMIN_TOKEN, or run `hookpost serve` once to create "
            f"{settings.admin_token_file}"
        )
    app = FastAPI(
        title="Hookpost",
        version=__version__,
        description="Signed webhook delivery with a Svix-compatible API.",
        lifespan=make_lifespan(settings, admin_token),
        docs_url=None,  # served by install_reference, without a CDN
        redoc_url=None,
        # FastAPI's own telemetry looks up the global providers on every request: with
        # tracing off, off too. With it on, the request spans are the instrumentation's.
        telemetry=None if tracing.enabled() else _TELEMETRY_OFF,
    )
    install_error_handlers(app)
    # Each router straight onto the app, not nested: FastAPI matches a request level by
    # level, and nesting cost ~15 % of the API's CPU in route matching. Messages first:
    # POST .../msg is the hot path, and matching walks routes in order.
    # Every route authorises: the admin token, or a token scoped to one application (auth.policy).
    for router in (
        messages,
        applications,
        endpoints,
        destinations,
        pollers,
        attempts,
        background_tasks,
        event_types,
        environment,
        auth,
        replay,
        purge,
        operational,
        statistics,
    ):
        app.include_router(router, prefix=API_PREFIX, dependencies=[Depends(authorize)])
    app.include_router(health.router, prefix=API_PREFIX)
    # WebSocket: checks the token itself (header or ?token=), with the same scoping.
    app.include_router(stream, prefix=API_PREFIX)
    app.include_router(operations)  # /healthz, /readyz, /metrics
    install_reference(app)  # /docs and /redoc
    install_portal(app)  # /portal, where app portal links lead
    if settings.console_enabled:
        install_console(app)  # /console, and / redirects there
    _document_links(app)
    # The hot route's shortcut first, so it sits inside the edge: added last, the edge is
    # outermost. The request id is set before anything else runs or logs; what escapes the
    # token check, the keyed answers or the routes is answered by its error boundary. A body
    # under /api/v1 is read only once its token names someone, and a keyed answer replays
    # only for a caller the token check let in.
    app.add_middleware(HotMessageRoute, prefix=API_PREFIX)
    authenticate = AuthenticateBeforeBody(API_PREFIX + "/", public_paths=frozenset({API_PREFIX + "/health"}))
    app.add_middleware(ApiEdge, max_body_bytes=settings.max_body_bytes, authenticate=authenticate)
    tracing.instrument_app(app)  # the request spans, outside the edge
    return app


def _document_links(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_idempotency(add_links(generate()))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
