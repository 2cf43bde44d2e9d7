"""The gateway's metrics in Ray: recorded through `ray.util.metrics`, served by each node's
exporter port.

Importing the `deployments` package imports this module, which makes `RaySink` the default
sink of `gateway.observability.metrics` in every Ray worker that runs gateway code.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from gateway.observability.catalogue import MetricSpec
from gateway.observability.metrics import Labels, MemorySink, MetricSink, use_default_sink

logger = logging.getLogger("llmgw.metrics")


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


# Counters and gauges are summed (last value for a gauge) in the replica and recorded through
# Ray this often; histograms are recorded as observed. Ray's own exporter gathers every few
# seconds, so a second's delay is not seen, and each request records 4-6 points fewer.
FLUSH_INTERVAL_S = 1.0

Series = tuple[str, tuple[tuple[str, str], ...]]


class RaySink:
    """Records through `ray.util.metrics`, creating each metric on first use; counters and
    gauges gathered in process and recorded every `flush_interval_s` by a daemon thread."""

    def __init__(self, flush_interval_s: float = FLUSH_INTERVAL_S) -> None:
        self._metrics: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._counts: dict[Series, float] = {}
        self._levels: dict[Series, float] = {}
        self._interval = flush_interval_s
        self._flusher: threading.Thread | None = None

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
        if spec.kind == "histogram":
            self._metric(spec).observe(value, tags=dict(labels))
            return
        if spec.kind == "counter" and value <= 0:
            return  # Ray refuses a zero increment
        series = (spec.name, tuple(labels.items()))
        if spec.name not in self._metrics:
            self._metric(spec)
        with self._lock:
            if spec.kind == "counter":
                self._counts[series] = self._counts.get(series, 0.0) + value
            else:
                self._levels[series] = value
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_forever, name="llmgw-metrics", daemon=True
                )
                self._flusher.start()

    def flush(self) -> None:
        """Record what counters and gauges gathered since the last flush."""
        with self._lock:
            counts, self._counts = self._counts, {}
            levels, self._levels = self._levels, {}
        for (name, labels), value in counts.items():
            self._metrics[name].inc(value, tags=dict(labels))
        for (name, labels), value in levels.items():
            self._metrics[name].set(value, tags=dict(labels))

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self._interval)
            try:
                self.flush()
            except Exception:  # a metric refused is logged, the replica goes on
                logger.exception("recording metrics failed")


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
