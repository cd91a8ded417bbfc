"""The API's operational endpoints (``/healthz``, ``/readyz``, ``/metrics``), without
authentication and kept out of the OpenAPI document."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from hookpost.api.dependencies import StateDep
from hookpost.observability import health
from hookpost.observability.metrics import read_backlog, render_backlog, render_process_metrics

logger = logging.getLogger(__name__)

# Kept out of the OpenAPI document, which describes the Svix-compatible API; docs/operations.md.
router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive and its event loop answers (no authentication, no dependencies)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: StateDep) -> JSONResponse:
    """Ready for traffic: the database answers ``SELECT 1`` and the broker accepts a connection.
    A failing check that is not required (Redis of its own) makes it ``degraded``, still 200."""
    results = await health.readiness(state.engine, state.settings)
    failing = [result.name for result in results if not result.ok and result.required]
    degraded = [result.name for result in results if not result.ok and not result.required]
    body: dict[str, Any] = {
        "status": "unavailable" if failing else "degraded" if degraded else "ok",
        "checks": {result.name: "ok" if result.ok else "failing" for result in results},
    }
    if failing:
        body["failing"] = failing
    if degraded:
        body["degraded"] = degraded
    if failing or degraded:
        body["detail"] = {result.name: result.detail for result in results if not result.ok}
    return JSONResponse(body, status_code=status.HTTP_503_SERVICE_UNAVAILABLE if failing else status.HTTP_200_OK)


@router.get("/metrics", response_class=Response)
async def metrics(state: StateDep) -> Response:
    """Prometheus text format: every API worker's counters, and the delivery backlog."""
    body = await anyio.to_thread.run_sync(render_process_metrics)
    try:
        async with asyncio.timeout(state.settings.readiness_timeout), state.sessionmaker() as session:
            backlog = await read_backlog(session)
    except Exception as error:  # the rest of the scrape is still worth having
        logger.warning("metrics: delivery backlog not read: %s", type(error).__name__)
    else:
        body += render_backlog(backlog)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
