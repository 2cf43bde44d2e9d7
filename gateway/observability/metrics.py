"""Where the gateway's metrics go: a small sink interface, so `gateway/` needs no Ray.

Inside a Ray worker (an ingress, pool or router replica, the registry actor) the sink is
`deployments.observability.RaySink`, which records through `ray.util.metrics`: Ray's per-node
exporter then serves every replica's series to one Prometheus scrape. The `deployments`
package chooses it when it is imported (`use_default_sink`); anywhere else the sink is a
`MemorySink`, which tests read. `GatewayMetrics` turns domain events (a finished request, a
circuit change, a refusal) into metric points, so callers never spell a metric name.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from gateway.observability.catalogue import (
    CIRCUIT_OPEN,
    CIRCUIT_TRANSITIONS,
    COST,
    ENDPOINT,
    ERROR,
    MODEL,
    OPERATION,
    OVERHEAD,
    POOL_QUEUE,
    PROBE_DURATION,
    PROVIDER,
    PROVIDER_DURATION,
    PROVIDER_UP,
    REFUSALS,
    REQUEST_DURATION,
    REQUESTS,
    STATUS,
    TENANT,
    TOKEN_TYPE,
    TOKENS,
    TOKENS_TOTAL,
    TPOT,
    TTFT,
    MetricSpec,
)

Labels = Mapping[str, str]

# Refusals counted as such (429s and the replica's own capacity 503s), by error code.
REFUSAL_CODES = frozenset(
    {"rate_limit_exceeded", "budget_exceeded", "gateway_at_capacity", "quota_unavailable"}
)


class MetricSink(Protocol):
    """Takes metric points: a counter's increment, a histogram's observation, a gauge's value."""

    def emit(self, spec: MetricSpec, value: float, labels: Labels) -> None: ...


class MemorySink:
    """Metric points kept in this process: counters summed, gauges' last value, histograms'
    observations. For tests and for the library running without Ray."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self.gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.histograms: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = defaultdict(
            list
        )

    def emit(self, spec: MetricSpec, value: float, labels: Labels) -> None:
        key = (spec.name, tuple(sorted(labels.items())))
        with self._lock:
            if spec.kind == "counter":
                self.counters[key] += value
            elif spec.kind == "gauge":
                self.gauges[key] = value
            else:
                self.histograms[key].append(value)

    def points(self, name: str, **match: str) -> list[tuple[dict[str, str], Any]]:
        """Every (labels, value) of metric `name` whose labels include `match`."""
        found: list[tuple[dict[str, str], Any]] = []
        for store in (self.counters, self.gauges, self.histograms):
            for (metric, labels), value in list(store.items()):
                got = dict(labels)
                if metric == name and all(got.get(k) == v for k, v in match.items()):
                    found.append((got, value))
        return found

    def total(self, name: str, **match: str) -> float:
        """A counter's sum, or a histogram's number of observations, over matching series."""
        return sum(v if isinstance(v, float) else len(v) for _, v in self.points(name, **match))


class GatewayMetrics:
    """Domain events in, metric points out."""

    def __init__(self, sink: MetricSink) -> None:
        self.sink = sink

    def request(
        self,
        *,
        tenant: str,
        endpoint: str,
        model: str,
        provider: str,
        status: int,
        error: str,
        duration_s: float,
        overhead_s: float,
    ) -> None:
        """One answered model call."""
        op = _operation(endpoint)
        emit = self.sink.emit
        emit(
            REQUESTS,
            1.0,
            {
                TENANT: tenant,
                ENDPOINT: endpoint,
                OPERATION: op,
                MODEL: model,
                PROVIDER: provider,
                STATUS: str(status),
                ERROR: error,
            },
        )
        emit(
            REQUEST_DURATION,
            duration_s,
            {OPERATION: op, MODEL: model, PROVIDER: provider, ERROR: error},
        )
        emit(OVERHEAD, overhead_s, {ENDPOINT: endpoint, OPERATION: op})
        if error in REFUSAL_CODES:
            emit(REFUSALS, 1.0, {TENANT: tenant, "reason": error})

    def usage(
        self,
        *,
        tenant: str,
        endpoint: str,
        model: str,
        provider: str,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int,
        cost_usd: float,
    ) -> None:
        """The tokens and cost of one served call."""
        labels = {TENANT: tenant, OPERATION: _operation(endpoint), MODEL: model, PROVIDER: provider}
        for kind, count in (
            ("input", input_tokens),
            ("output", output_tokens),
            ("cached", cached_tokens),
        ):
            if kind != "cached" or count:
                self.sink.emit(TOKENS, float(count), {**labels, TOKEN_TYPE: kind})
                self.sink.emit(TOKENS_TOTAL, float(count), {**labels, TOKEN_TYPE: kind})
        self.sink.emit(COST, cost_usd, {TENANT: tenant, MODEL: model, PROVIDER: provider})

    def attempt(
        self, *, endpoint: str, model: str, provider: str, error: str, seconds: float
    ) -> None:
        """One call to a provider (a retry or a fallback is another)."""
        self.sink.emit(
            PROVIDER_DURATION,
            seconds,
            {OPERATION: _operation(endpoint), MODEL: model, PROVIDER: provider, ERROR: error},
        )

    def first_token(self, *, endpoint: str, model: str, provider: str, seconds: float) -> None:
        self.sink.emit(
            TTFT, seconds, {OPERATION: _operation(endpoint), MODEL: model, PROVIDER: provider}
        )

    def per_output_token(self, *, endpoint: str, model: str, provider: str, seconds: float) -> None:
        self.sink.emit(
            TPOT, seconds, {OPERATION: _operation(endpoint), MODEL: model, PROVIDER: provider}
        )

    def circuit(self, provider: str, model: str, tripped: bool) -> None:
        """A circuit tripped (open) or closed again."""
        labels = {PROVIDER: provider, MODEL: model}
        self.sink.emit(CIRCUIT_OPEN, 1.0 if tripped else 0.0, labels)
        self.sink.emit(
            CIRCUIT_TRANSITIONS, 1.0, {**labels, "state": "open" if tripped else "closed"}
        )

    def pool_queue(self, pool: str, depth: int) -> None:
        self.sink.emit(POOL_QUEUE, float(depth), {"pool": pool})

    def probe(self, provider: str, ok: bool, seconds: float) -> None:
        """One provider health probe."""
        self.sink.emit(PROVIDER_UP, 1.0 if ok else 0.0, {PROVIDER: provider})
        self.sink.emit(
            PROBE_DURATION, seconds, {PROVIDER: provider, "outcome": "ok" if ok else "error"}
        )


def _operation(endpoint: str) -> str:
    # OpenTelemetry's gen_ai.operation.name values.
    return {"chat": "chat", "embeddings": "embeddings"}.get(endpoint, endpoint)


_current: GatewayMetrics | None = None
_default_sink: Callable[[], MetricSink] = MemorySink


def use_default_sink(factory: Callable[[], MetricSink]) -> None:
    """What `metrics()` records into when nothing was installed: the Serve wiring sets Ray's."""
    global _default_sink
    _default_sink = factory


def metrics() -> GatewayMetrics:
    """This process's metrics: through Ray inside a Ray worker, in memory elsewhere."""
    global _current
    if _current is None:
        _current = GatewayMetrics(_default_sink())
    return _current


def install(sink: MetricSink) -> GatewayMetrics:
    """Send this process's metrics to `sink` (tests; a custom exporter)."""
    global _current
    _current = GatewayMetrics(sink)
    return _current
