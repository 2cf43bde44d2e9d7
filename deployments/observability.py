"""The gateway's metrics in Ray: recorded through `ray.util.metrics`, served by each node's
exporter port.

Importing the `deployments` package imports this module, which makes `RaySink` the default
sink of `gateway.observability.metrics` in every Ray worker that runs gateway code.
"""

from __future__ import annotations

import threading
from typing import Any

from gateway.observability.catalogue import MetricSpec
from gateway.observability.metrics import Labels, MemorySink, MetricSink, use_default_sink


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


class RaySink:
    """Records through `ray.util.metrics`, creating each metric on first use."""

    def __init__(self) -> None:
        self._metrics: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _metric(self, spec: MetricSpec) -> Any:
        metric = self._metrics.get(spec.name)
        if metric is None:
            from ray.util import metrics as ray_metrics

            with self._lock:
                metric = self._metrics.get(spec.name)
                if metric is None:
                    kwargs: dict[str, Any] = {
                        "description": spec.description,
                        "tag_keys": spec.labels,
                    }
                    if spec.kind == "counter":
                        metric = ray_metrics.Counter(spec.ray_name, **kwargs)
                    elif spec.kind == "gauge":
                        metric = ray_metrics.Gauge(spec.ray_name, **kwargs)
                    else:
                        metric = ray_metrics.Histogram(
                            spec.ray_name, boundaries=list(spec.buckets), **kwargs
                        )
                    self._metrics[spec.name] = metric
        return metric

    def emit(self, spec: MetricSpec, value: float, labels: Labels) -> None:
        metric = self._metric(spec)
        tags = dict(labels)
        if spec.kind == "counter":
            if value > 0:  # Ray refuses a zero increment
                metric.inc(value, tags=tags)
        elif spec.kind == "gauge":
            metric.set(value, tags=tags)
        else:
            metric.observe(value, tags=tags)


def _in_ray_worker() -> bool:
    import sys

    # Only a process that already runs Ray can be a worker: never import it to find out.
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return False
    from ray._private.worker import WORKER_MODE, global_worker

    return bool(global_worker.mode == WORKER_MODE)


def _sink() -> MetricSink:
    return RaySink() if _in_ray_worker() else MemorySink()


use_default_sink(_sink)
