"""deploy/grafana/hookpost.json asks only for metrics Hookpost really exposes, and shows them all.

Every panel's PromQL is parsed (a PromQL parser, Grafana's interval variables put to a duration)
and each metric it selects is checked against a real scrape of the app's /metrics after a
message was sent: the family must exist, and a suffix must be one its type has (``_total`` on a
counter, ``_bucket``/``_count``/``_sum`` on a histogram, none on a gauge). The labels a panel
matches on or groups by must be ones the metric has (or Prometheus' own target labels).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
from fastapi.testclient import TestClient
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

from hookpost.observability import metrics

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "hookpost.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
# Grafana's own variables in a range: a duration, for the parser.
GRAFANA_INTERVAL = re.compile(r"\$__(rate_)?interval|\$__range")
TARGET_LABELS = frozenset({"instance", "job"})  # added by Prometheus to every scraped sample


def _expressions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            yield node["expr"]
        for value in node.values():
            yield from _expressions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _expressions(value)


def _selected(expr: Any) -> Iterator[str]:
    """Every metric name a parsed PromQL expression selects."""
    if isinstance(expr, promql_parser.VectorSelector):
        assert expr.name, f"a selector without a metric name: {expr}"
        yield expr.name
    elif isinstance(expr, promql_parser.MatrixSelector):
        yield from _selected(expr.vector_selector)
    elif isinstance(expr, promql_parser.BinaryExpr):
        yield from _selected(expr.lhs)
        yield from _selected(expr.rhs)
    elif isinstance(expr, promql_parser.Call):
        for argument in expr.args:
            yield from _selected(argument)
    elif isinstance(expr, promql_parser.AggregateExpr):
        yield from _selected(expr.expr)
        if expr.param is not None:
            yield from _selected(expr.param)
    elif isinstance(expr, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr):
        yield from _selected(expr.expr)


def dashboard_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = list(_expressions(dashboard["panels"]))
    assert expressions, "the dashboard has no queries"
    names: set[str] = set()
    for expression in expressions:
        names.update(_selected(promql_parser.parse(GRAFANA_INTERVAL.sub("5m", expression))))
    return names


def exposed_families(client: TestClient) -> dict[str, str]:
    """The app's /metrics after a message was accepted: family name -> type."""
    app_id = client.post("/api/v1/app", json={"name": "dashboard"}).json()["id"]
    client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": "http://127.0.0.1:9/hook"})
    assert client.post(f"/api/v1/app/{app_id}/msg", json={"eventType": "e", "payload": {}}).status_code == 202
    scraped = client.get("/metrics")
    assert scraped.status_code == 200, scraped.text
    return {family.name: family.type for family in text_string_to_metric_families(scraped.text)}


def _family_of(name: str, families: dict[str, str]) -> str | None:
    for family, kind in families.items():
        if any(name == family + suffix for suffix in SUFFIXES.get(kind, ())):
            return family
    return None


def test_every_metric_the_dashboard_queries_is_one_hookpost_exposes(client: TestClient) -> None:
    families = exposed_families(client)
    used = dashboard_metrics()
    unknown = sorted(name for name in used if _family_of(name, families) is None)
    assert not unknown, f"the dashboard queries metrics /metrics does not expose: {unknown}"


def test_the_dashboard_shows_every_hookpost_metric(client: TestClient) -> None:
    families = exposed_families(client)
    shown = {_family_of(name, families) for name in dashboard_metrics()}
    # Each counter's and histogram's creation time parses as a gauge of its own: not a metric to chart.
    ours = {family for family in families if family.startswith("hookpost_") and not family.endswith("_created")}
    assert ours == shown, f"on /metrics but on no panel: {sorted(ours - shown)}"
    assert len(ours) == 9


def test_the_checker_catches_a_misspelt_metric(client: TestClient) -> None:
    families = exposed_families(client)
    parsed = promql_parser.parse("sum(rate(hookpost_messages_accepted[5m])) + hookpost_due_deliveries_total")
    assert [name for name in _selected(parsed) if _family_of(name, families) is None] == [
        "hookpost_messages_accepted",  # a counter is exposed as _total
        "hookpost_due_deliveries_total",  # a gauge has no suffix
    ]


def _labels_of_metrics() -> dict[str, frozenset[str]]:
    """Each sample name Hookpost's process metrics have -> the labels it carries."""
    found: dict[str, frozenset[str]] = {}
    for metric in vars(metrics).values():
        if isinstance(metric, Counter | Gauge | Histogram):
            name, labels = metric._name, frozenset(metric._labelnames)  # no public accessor
            if isinstance(metric, Counter):
                found[name + "_total"] = labels
            elif isinstance(metric, Histogram):
                found.update({name + "_count": labels, name + "_sum": labels, name + "_bucket": labels | {"le"}})
            else:
                found[name] = labels
    return found


def _label_uses(expr: Any) -> Iterator[tuple[str, set[str], set[str]]]:
    """(metric, labels it is matched on, labels grouped by over it) for every selector."""
    if isinstance(expr, promql_parser.VectorSelector):
        yield expr.name, {matcher.name for matcher in expr.matchers.matchers}, set()
    elif isinstance(expr, promql_parser.MatrixSelector):
        yield from _label_uses(expr.vector_selector)
    elif isinstance(expr, promql_parser.BinaryExpr):
        yield from _label_uses(expr.lhs)
        yield from _label_uses(expr.rhs)
    elif isinstance(expr, promql_parser.Call):
        for argument in expr.args:
            yield from _label_uses(argument)
    elif isinstance(expr, promql_parser.AggregateExpr):
        grouped = set(expr.modifier.labels) if expr.modifier is not None else set()
        for name, matched, inner in _label_uses(expr.expr):
            yield name, matched, inner | grouped
    elif isinstance(expr, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr):
        yield from _label_uses(expr.expr)


def test_every_label_the_dashboard_uses_is_one_the_metric_has() -> None:
    labels = _labels_of_metrics()
    assert labels["hookpost_delivery_attempts_total"] == {"outcome", "class"}
    assert "hookpost_worker_in_flight" in labels
    wrong = []
    for expression in _all_expressions():
        for name, matched, grouped in _label_uses(promql_parser.parse(GRAFANA_INTERVAL.sub("5m", expression))):
            # The backlog gauges (read from the database at scrape time) have no labels.
            unknown = (matched | grouped) - labels.get(name, frozenset()) - TARGET_LABELS
            if unknown:
                wrong.append(f"{name}: {sorted(unknown)} in {expression}")
    assert not wrong, wrong
    grouped_by_class = [e for e in _all_expressions() if "by (class)" in e]
    assert grouped_by_class, "no panel shows attempts by class"


def _all_expressions() -> list[str]:
    return list(_expressions(json.loads(DASHBOARD.read_text())["panels"]))


def test_the_label_check_catches_a_label_the_metric_lacks() -> None:
    parsed = promql_parser.parse('sum by (endpoint) (rate(hookpost_delivery_attempts_total{outcom="failure"}[5m]))')
    [(name, matched, grouped)] = list(_label_uses(parsed))
    assert (matched | grouped) - _labels_of_metrics()[name] == {"endpoint", "outcom"}
