"""Every metric the gateway exports: its OpenTelemetry name, kind, unit, labels and buckets.

Names follow OpenTelemetry's GenAI semantic conventions where one exists and `llmgw.*`
otherwise. Labels are the conventions' attribute names in Prometheus spelling (dots become
underscores). Ray's exporter prefixes `ray_`, so `gen_ai.server.request.duration` (seconds)
is scraped as `ray_gen_ai_server_request_duration_seconds_bucket|_sum|_count`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "histogram", "gauge"]

# Prometheus' suffix for each unit, as OpenTelemetry's Prometheus exporter writes it.
_UNIT_SUFFIX = {"s": "seconds", "USD": "usd"}
# What Ray's exporter puts in front of every application metric.
RAY_PREFIX = "ray_"

OPERATION = "gen_ai_operation_name"
PROVIDER = "gen_ai_provider_name"
MODEL = "gen_ai_request_model"
TOKEN_TYPE = "gen_ai_token_type"
ERROR = "error_type"
STATUS = "http_response_status_code"
TENANT = "tenant"
ENDPOINT = "endpoint"

# OpenTelemetry GenAI's advised bucket boundaries.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)  # fmt: skip
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0)  # fmt: skip
TPOT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
                1.0, 2.5)  # fmt: skip
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
# The gateway's own time is milliseconds; these resolve it.
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric."""

    name: str  # OpenTelemetry spelling
    kind: Kind
    description: str
    labels: tuple[str, ...]
    unit: str = ""
    buckets: tuple[float, ...] = ()

    @property
    def ray_name(self) -> str:
        """The name given to `ray.util.metrics` (Prometheus' charset, unit suffix included)."""
        base = self.name.replace(".", "_")
        suffix = _UNIT_SUFFIX.get(self.unit)
        return f"{base}_{suffix}" if suffix else base

    @property
    def prometheus_name(self) -> str:
        """The family name a scrape of Ray's exporter shows (counters end in `_total`)."""
        name = RAY_PREFIX + self.ray_name
        return name + "_total" if self.kind == "counter" else name

    def series_names(self) -> tuple[str, ...]:
        """Every series name a query may use for this metric."""
        if self.kind == "histogram":
            base = self.prometheus_name
            return (f"{base}_bucket", f"{base}_sum", f"{base}_count")
        return (self.prometheus_name,)


REQUESTS = MetricSpec(
    "llmgw.requests",
    "counter",
    "Model calls answered, by tenant, endpoint, model, provider, status and error",
    (TENANT, ENDPOINT, OPERATION, MODEL, PROVIDER, STATUS, ERROR),
)
TOKENS = MetricSpec(
    "gen_ai.client.token.usage",
    "histogram",
    "Tokens per request by type (input, output, cached)",
    (TENANT, OPERATION, MODEL, PROVIDER, TOKEN_TYPE),
    "{token}",
    TOKEN_BUCKETS,
)
# Ray's exporter reports a histogram's `_sum` from bucket midpoints (one observation of 8
# tokens sums to 10), so exact totals come from this counter, the distribution from the above.
TOKENS_TOTAL = MetricSpec(
    "llmgw.tokens",
    "counter",
    "Tokens used, by type (input, output, cached): exact totals",
    (TENANT, OPERATION, MODEL, PROVIDER, TOKEN_TYPE),
    "{token}",
)
COST = MetricSpec(
    "llmgw.cost",
    "counter",
    "What requests were billed, priced from the registry entry that served them",
    (TENANT, MODEL, PROVIDER),
    "USD",
)
REQUEST_DURATION = MetricSpec(
    "gen_ai.server.request.duration",
    "histogram",
    "Time from a request's arrival to its last byte, retries and fallbacks included",
    (OPERATION, MODEL, PROVIDER, ERROR),
    "s",
    DURATION_BUCKETS,
)
OVERHEAD = MetricSpec(
    "llmgw.gateway.overhead",
    "histogram",
    "Time a request spent in the gateway, the provider's own time excluded",
    (ENDPOINT, OPERATION),
    "s",
    OVERHEAD_BUCKETS,
)
PROVIDER_DURATION = MetricSpec(
    "gen_ai.client.operation.duration",
    "histogram",
    "Each call the gateway made to a provider (one per attempt), as the gateway timed it",
    (OPERATION, MODEL, PROVIDER, ERROR),
    "s",
    DURATION_BUCKETS,
)
TTFT = MetricSpec(
    "gen_ai.server.time_to_first_token",
    "histogram",
    "Time from a streamed request's arrival until its first content was ready to send",
    (OPERATION, MODEL, PROVIDER),
    "s",
    TTFT_BUCKETS,
)
TPOT = MetricSpec(
    "gen_ai.server.time_per_output_token",
    "histogram",
    "Time per output token after the first, for streamed requests",
    (OPERATION, MODEL, PROVIDER),
    "s",
    TPOT_BUCKETS,
)
CIRCUIT_OPEN = MetricSpec(
    "llmgw.circuit.open",
    "gauge",
    "1 while a model's circuit at a provider is open or half-open, 0 once closed (per replica)",
    (PROVIDER, MODEL),
)
CIRCUIT_TRANSITIONS = MetricSpec(
    "llmgw.circuit.transitions",
    "counter",
    "Circuits tripped (state=open) and closed again (state=closed)",
    (PROVIDER, MODEL, "state"),
)
REFUSALS = MetricSpec(
    "llmgw.refusals",
    "counter",
    "Requests refused by a rate limit, a budget or the replica's capacity, by reason",
    (TENANT, "reason"),
)
POOL_QUEUE = MetricSpec(
    "llmgw.pool.queue_depth",
    "gauge",
    "Calls a provider pool replica has accepted and not yet answered",
    ("pool",),
)
PROVIDER_UP = MetricSpec(
    "llmgw.provider.up",
    "gauge",
    "1 if the provider's last health probe succeeded, 0 if it failed",
    (PROVIDER,),
)
PROBE_DURATION = MetricSpec(
    "llmgw.provider.probe.duration",
    "histogram",
    "How long each provider health probe took",
    (PROVIDER, "outcome"),
    "s",
    TTFT_BUCKETS,
)

CATALOGUE: tuple[MetricSpec, ...] = (
    REQUESTS,
    TOKENS,
    TOKENS_TOTAL,
    COST,
    REQUEST_DURATION,
    OVERHEAD,
    PROVIDER_DURATION,
    TTFT,
    TPOT,
    CIRCUIT_OPEN,
    CIRCUIT_TRANSITIONS,
    REFUSALS,
    POOL_QUEUE,
    PROVIDER_UP,
    PROBE_DURATION,
)


def exported_series() -> set[str]:
    """Every Prometheus series name the gateway exports (for checking dashboards)."""
    return {name for spec in CATALOGUE for name in spec.series_names()}
