"""The Grafana dashboard in cluster/ queries only what the gateway exports, by its labels."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gateway.observability.catalogue import CATALOGUE, exported_series

DASHBOARD = Path(__file__).parents[3] / "cluster" / "grafana-llmgw.json"
METRIC = re.compile(r"\bray_[a-z0-9_]+")
GROUPING = re.compile(r"\bby \(([^)]*)\)")
SELECTOR = re.compile(r"\{([^}]*)\}")


def _queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def _labels_of(series: str) -> set[str]:
    for spec in CATALOGUE:
        if series in spec.series_names():
            return set(spec.labels) | ({"le"} if series.endswith("_bucket") else set())
    return set()


def test_every_query_names_an_exported_metric() -> None:
    queries = _queries()
    assert len(queries) >= 15
    exported = exported_series()
    for expr in queries:
        names = METRIC.findall(expr)
        assert names, f"no gateway metric in {expr!r}"
        assert set(names) <= exported, f"{expr!r} names {set(names) - exported}"


def test_every_grouping_and_selector_uses_the_metrics_labels() -> None:
    for expr in _queries():
        known = set().union(*(_labels_of(n) for n in METRIC.findall(expr)))
        used = {label.strip() for group in GROUPING.findall(expr) for label in group.split(",")}
        used |= {
            m.split("!=")[0].split("=")[0].strip()
            for s in SELECTOR.findall(expr)
            for m in s.split(",")
        }
        assert used <= known, f"{expr!r} uses labels {used - known}"


def test_the_dashboard_covers_traffic_errors_latency_overhead_cost_and_circuits() -> None:
    text = " ".join(_queries())
    for series in (
        "ray_llmgw_requests_total",
        "ray_gen_ai_server_request_duration_seconds_bucket",
        "ray_gen_ai_server_time_to_first_token_seconds_bucket",
        "ray_llmgw_gateway_overhead_seconds_bucket",
        "ray_llmgw_cost_usd_total",
        "ray_llmgw_circuit_open",
    ):
        assert series in text
