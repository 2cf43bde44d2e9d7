"""Where a Ray cluster serves the gateway's metrics: each live node's exporter port."""

from __future__ import annotations

from typing import Any


def metrics_endpoints() -> list[dict[str, Any]]:
    """One `/metrics` URL per live node; a Prometheus scrape of each sees every replica there."""
    import ray

    endpoints = []
    for node in ray.nodes():
        port = node.get("MetricsExportPort")
        if node.get("Alive") and port:
            host = node.get("NodeManagerAddress", "127.0.0.1")
            endpoints.append({"node": host, "url": f"http://{host}:{port}/metrics"})
    return sorted(endpoints, key=lambda e: e["url"])
