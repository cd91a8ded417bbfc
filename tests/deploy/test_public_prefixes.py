"""Every public prefix of the app is reachable through the Kubernetes Ingress and the nginx config,
and the private ones (health, readiness, metrics) are not published. The prefixes come from the
app's own routes, so a new page or route that the deploy files miss fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import yaml
from starlette.routing import BaseRoute

from hookpost.app import create_app
from hookpost.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PRIVATE = {"/healthz", "/readyz", "/metrics"}


def _paths(routes: list[BaseRoute], prefix: str = "") -> Iterator[str]:
    """Every route's full path; an included router (FastAPI keeps it as one entry) is walked."""
    for route in routes:
        path = getattr(route, "path", None)
        if path is not None:
            yield prefix + path
        else:
            yield from _paths(route.original_router.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]


def app_paths(settings: Settings) -> set[str]:
    return set(_paths(create_app(settings).routes))


def app_prefixes(settings: Settings) -> set[str]:
    """Each path's first segment (``/api``, ``/portal``...), and ``/`` for the root."""
    return {"/" + path.split("/")[1] for path in app_paths(settings)}


def ingress_paths() -> list[tuple[str, str]]:
    ingress = yaml.safe_load((ROOT / "deploy/k8s/ingress.yaml").read_text())
    return [(path["path"], path["pathType"]) for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]


def routed(prefix: str, paths: list[tuple[str, str]], every_path: set[str]) -> bool:
    """Whether every app path under ``prefix`` matches an Ingress path (Prefix: by whole segments)."""
    under = {p for p in every_path if p == prefix or p.startswith(prefix + "/")} if prefix != "/" else {"/"}
    return all(
        any(
            (kind == "Exact" and path == p) or (kind == "Prefix" and (p + "/").startswith(path.rstrip("/") + "/"))
            for path, kind in paths
        )
        for p in under
    )


def test_the_ingress_routes_every_public_prefix_and_no_private_one(settings: Settings) -> None:
    prefixes = app_prefixes(settings)
    every_path = app_paths(settings)
    paths = ingress_paths()

    assert {"/api", "/portal", "/console", "/docs", "/redoc", "/openapi.json"} <= prefixes
    for prefix in prefixes - PRIVATE:
        assert routed(prefix, paths, every_path), f"{prefix} is not routed by the Ingress"
    for private in PRIVATE:
        assert not routed(private, paths, {private}), f"{private} is published by the Ingress"


def test_nginx_proxies_every_public_prefix_and_keeps_metrics_private(settings: Settings) -> None:
    conf = (ROOT / "deploy/nginx/hookpost.conf").read_text()
    locations = re.findall(r"location\s+([^{]+?)\s*\{(.*?)\n    \}", conf, flags=re.DOTALL)
    by_match = {match.strip(): body for match, body in locations}

    # "location /" catches whatever no other location takes, and passes it to the app.
    assert "proxy_pass" in by_match["/"]
    for match, body in by_match.items():
        if match != "= /metrics":
            assert "proxy_pass" in body, f"{match} does not pass to the app"
            assert "return 4" not in body, f"{match} refuses what the app serves"
    assert "proxy_pass" not in by_match["= /metrics"]
    assert app_prefixes(settings) - PRIVATE  # there is something public to route
