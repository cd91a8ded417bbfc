"""The count and time of every HTTP request, by method, route template and status."""

from __future__ import annotations

from prometheus_client import Counter, Histogram
from starlette.types import Scope

from hookpost.observability.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

UNMATCHED = "unmatched"
# Any other method a client makes up is counted as "other": label values must stay few.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/api/v1/app/{app_id}``), never the raw path."""
    # FastAPI keeps the prefixed template of an included router's route here; the route
    # object alone only knows its path within its router.
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, dict):
        context = fastapi_scope.get("effective_route_context")
        template = getattr(context, "path_format", None)
        if isinstance(template, str):
            return template
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED


# Each (method, route, status)'s counter and each (method, route)'s histogram, looked up once:
# ``labels()`` takes a lock and builds a key on every call.
_counters: dict[tuple[str, str, int], Counter] = {}
_timers: dict[tuple[str, str], Histogram] = {}


def observe_request(scope: Scope, status_code: int, seconds: float) -> None:
    """Count and time one HTTP request by method, route template and status (``api.edge``)."""
    method = scope["method"] if scope["method"] in METHODS else "other"
    route = route_template(scope)
    counter = _counters.get((method, route, status_code))
    if counter is None:
        counter = _counters[method, route, status_code] = HTTP_REQUESTS.labels(
            method=method, route=route, status=str(status_code)
        )
    counter.inc()
    timer = _timers.get((method, route))
    if timer is None:
        timer = _timers[method, route] = HTTP_REQUEST_DURATION.labels(method=method, route=route)
    timer.observe(seconds)
