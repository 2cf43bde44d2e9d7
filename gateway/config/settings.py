"""The config file's operating sections: routing, pipeline, server, deployments, actors, auth,
store, registry, health and observability."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveFloat, model_validator

from gateway.config.catalog import ProviderType, Strategy, _FieldError, _Section


class RetryConfig(_Section):
    max_attempts: int = Field(default=2, ge=1, le=10)
    base_delay_s: float = Field(default=0.05, ge=0)
    max_delay_s: float = Field(default=2.0, ge=0)
    max_retry_after_s: float = Field(default=10.0, ge=0)


class CircuitConfig(_Section):
    failure_threshold: int = Field(default=5, ge=1)
    error_rate: float = Field(default=0.5, gt=0, le=1)
    window_s: float = Field(default=30.0, gt=0)
    min_requests: int = Field(default=20, ge=1)
    open_s: float = Field(default=10.0, gt=0)


class Weights(_Section):
    cost: float = Field(default=1.0, ge=0)
    latency: float = Field(default=1.0, ge=0)
    quality: float = Field(default=1.0, ge=0)
    preference: float = Field(default=0.5, ge=0)
    errors: float = Field(default=1.0, ge=0, description="penalty per unit of recent error rate")


class RoutingConfig(_Section):
    strategy: Strategy = "hybrid"
    placement: Literal["ingress", "router"] = Field(
        default="ingress",
        description="where fallback chains run: in the ingress (one hop) or a Router deployment",
    )
    weights: Weights = Field(default_factory=Weights)
    min_quality: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="the quality strategy's threshold on published quality's lower bound",
    )
    provider_preference: list[str] = Field(default_factory=list)
    fallback: bool = True
    max_candidates: int = Field(default=3, ge=1)
    retries: RetryConfig = Field(default_factory=RetryConfig)
    circuit: CircuitConfig = Field(default_factory=CircuitConfig)
    request_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description=(
            "one deadline for a whole request, every retry and fallback included; "
            "default: the first candidate model's timeouts.total_s"
        ),
    )


# Authentication comes first: no body is read or parsed for a caller without a key.
DEFAULT_STEPS = [
    "authenticate",
    "authorize",
    "validate",
    "admit",
    "enrich",
    "route",
    "quota",
    "invoke",
    "observe",
    "meter",
    "audit",
]


class PipelineConfig(_Section):
    """Step order; a step is a built-in name or `module:Class`; `skip` maps a path to steps."""

    steps: list[str] = Field(default_factory=lambda: list(DEFAULT_STEPS))
    skip: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _callers_known_first(self) -> PipelineConfig:
        steps = self.steps
        if (
            "validate" in steps
            and "authenticate" in steps
            and steps.index("validate") < steps.index("authenticate")
        ):
            raise _FieldError(
                "pipeline.steps",
                "'authenticate' before 'validate' (a body is read only once the caller "
                f"is known), got {steps}",
            )
        for path, skipped in self.skip.items():
            guarded = {"authenticate", "authorize"} & set(skipped)
            if guarded and path.strip().lstrip("/").lower().startswith("admin"):
                raise _FieldError(
                    f"pipeline.skip.{path}",
                    f"no '{sorted(guarded)[0]}' here: /admin paths always authenticate and "
                    "authorize",
                )
        return self


class ServerConfig(_Section):
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_messages: int = Field(default=2048, ge=1)
    max_concurrent_calls: int = Field(
        default=256,
        ge=1,
        description="model calls one replica serves at once; the rest wait their turn",
    )
    queue_timeout_s: float = Field(
        default=60.0, gt=0, description="how long a call may wait for its turn before a 503"
    )
    docs: bool = Field(
        default=False,
        description="serve /docs and /openapi.json (without a key); off unless set",
    )
    inline_providers: list[ProviderType] = Field(
        default_factory=list,
        description=(
            "provider types called from inside the ingress (no pool, no handle hop): lower "
            "latency, but they scale with the ingress instead of on their own"
        ),
    )
    side_channel: bool = Field(
        default=True,
        description=(
            "calls from the ingress to provider pools over the pools' own kept-alive TCP "
            "connections instead of Serve's handle (about 0.8 ms less CPU a call)"
        ),
    )


class DeploymentSettings(_Section):
    """Serve settings for one deployment when `llmgw up` deploys (serve_config.yaml has the
    same fields for `serve deploy`); deployments/options.py turns them into Serve's options."""

    num_replicas: int | None = Field(default=None, ge=1)
    autoscaling_config: dict[str, Any] | None = None
    max_ongoing_requests: int | None = Field(default=None, ge=1)
    num_cpus: float | None = Field(default=None, ge=0)
    # The live settings serve_config.yaml's `user_config` holds (log_level, a pool's
    # max_concurrent_calls, ...); checked against the deployment's own model when the app is
    # built, since what each deployment accepts is the Serve wiring's (deployments/).
    user_config: dict[str, Any] | None = None


class ActorSettings(_Section):
    """Where the gateway's named actors run (registry, access, quota, usage writer).

    They hold the cluster's state and the usage spool, so on a cluster they belong on nodes
    that stay (the head, or an ingress group the autoscaler never removes): give them a
    custom resource those nodes advertise, e.g. `resources: {ingress_node: 0.001}`.
    """

    resources: dict[str, PositiveFloat] = Field(default_factory=dict)


# The deployments the `deployments:` section may tune, by the names serve_config.yaml gives
# them. Which pool serves which provider type, and what each is in Serve, is deployments/'s
# (deployments/options.py); a test holds the two in step.
DEPLOYMENT_NAMES = (
    "Ingress",
    "Router",
    "SimPool",
    "OpenAIPool",
    "AzureOpenAIPool",
    "AnthropicPool",
    "BedrockPool",
    "OllamaPool",
)


class AuthConfig(_Section):
    admin_key_env: str = "LLMGW_ADMIN_KEY"


class StoreConfig(_Section):
    url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite in LLMGW_HOME"
    )


class RegistryConfig(_Section):
    """How the registry follows this file across restarts."""

    on_removed: Literal["remove", "deprecate"] = Field(
        default="remove",
        description="what happens to a model an earlier config declared and this one does not",
    )


class HealthConfig(_Section):
    """How often providers are probed (and Ollama's installed models re-discovered)."""

    interval_s: float = Field(default=15.0, gt=0)
    timeout_s: float = Field(default=5.0, gt=0, description="a probe slower than this fails")


class TracingConfig(_Section):
    """OpenTelemetry traces over OTLP/HTTP; off unless an endpoint is set."""

    endpoint: str | None = Field(
        default=None, description="OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces"
    )
    service_name: str = "llmgw"
    sample_ratio: float = Field(default=1.0, ge=0, le=1)


class ObservabilityConfig(_Section):
    """Provider health probes, traces and logs (metrics need no settings: Ray exports them)."""

    health: HealthConfig = Field(default_factory=HealthConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    json_logs: bool = Field(default=True, description="structured JSON logs with request ids")
