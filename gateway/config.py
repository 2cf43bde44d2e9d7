"""The gateway's config file: providers, models, routing, pipeline, server and store settings.

Every field is checked at start; an error names the file, the field path and what was expected.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

ProviderType = Literal["sim", "openai", "azure_openai", "anthropic", "bedrock", "ollama"]
UseCase = Literal["chat", "summarization", "classification", "extraction", "research"]
Capability = Literal["chat", "streaming", "tools", "vision", "json_mode", "embeddings"]
ModelStatus = Literal["active", "testing", "deprecated"]
Strategy = Literal["capability", "cost", "latency", "preference", "tenant", "hybrid", "quality"]

USE_CASES: tuple[str, ...] = ("chat", "summarization", "classification", "extraction", "research")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConfigError(Exception):
    """A config file that cannot be used: the message names file, field and expectation."""


class SimSettings(_Section):
    """The `sim` provider's behaviour: deterministic text with chosen speed and failures."""

    seed: int = 0
    ttft_ms: float = Field(default=0.0, ge=0)
    tokens_per_s: float = Field(default=0.0, ge=0, description="0 means as fast as possible")
    output_tokens: int = Field(default=16, ge=1)
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    failure_statuses: list[int] = Field(default_factory=lambda: [503])
    cut_stream_after: int | None = Field(default=None, ge=0)


class ProviderConfig(_Section):
    """One upstream: its type and how to reach it. Secrets only by env-var reference."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    type: ProviderType
    base_url: str | None = None
    api_key_env: str | None = None
    endpoint: str | None = None
    api_version: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    organization: str | None = None
    project: str | None = None
    azure_ad: bool = False
    max_connections: int = Field(default=100, ge=1)
    sim: SimSettings | None = None

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not value.replace("_", "").isalnum():
            raise ValueError("the name of an environment variable (the key itself never goes here)")
        return value


class Price(_Section):
    input_per_mtok: float = Field(default=0.0, ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        """Cost in dollars of one call's usage."""
        cached_rate = (
            self.input_per_mtok
            if self.cached_input_per_mtok is None
            else (self.cached_input_per_mtok)
        )
        fresh = max(0, prompt_tokens - cached_tokens)
        return (
            fresh * self.input_per_mtok
            + cached_tokens * cached_rate
            + completion_tokens * self.output_per_mtok
        ) / 1_000_000

    @property
    def blended_per_mtok(self) -> float:
        """One figure to rank models by cost: a 3:1 input:output token mix."""
        return (3 * self.input_per_mtok + self.output_per_mtok) / 4


class Timeouts(_Section):
    connect_s: float = Field(default=5.0, gt=0)
    first_token_s: float = Field(default=30.0, gt=0)
    total_s: float = Field(default=300.0, gt=0)


class PublishedQuality(_Section):
    """A model's measured quality on one use case, as `llmgw eval publish` wrote it from a run."""

    mean: float = Field(ge=0, le=1)
    ci_low: float = Field(ge=0, le=1, description="lower bound of the 95% interval")
    ci_high: float = Field(ge=0, le=1)
    n: int = Field(ge=1, description="cases measured")
    scorer: str
    run_id: str
    published_at: str | None = None


class ModelConfig(_Section):
    """A model clients can name, at one provider, with what it can do and what it costs."""

    name: str = Field(min_length=1)
    provider: str
    upstream: str | None = None
    aliases: list[str] = Field(default_factory=list)
    use_cases: list[UseCase] = Field(default_factory=lambda: ["chat"])
    capabilities: list[Capability] = Field(default_factory=lambda: ["chat", "streaming"])
    context_window: int = Field(default=8192, ge=1)
    max_output_tokens: int = Field(default=4096, ge=1)
    price: Price = Field(default_factory=Price)
    status: ModelStatus = "active"
    quality: float = Field(default=0.5, ge=0, le=1)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    fallbacks: list[str] = Field(
        default_factory=list, description="models to try, in order, when this one fails"
    )
    sim: SimSettings | None = None
    published_quality: dict[UseCase, PublishedQuality] = Field(
        default_factory=dict, description="per use case, from eval runs (llmgw eval publish)"
    )
    facts: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "set by the gateway, not the config file: where capabilities, context_window, "
            "max_output_tokens and price came from (config, admin, table:<source>, default)"
        ),
    )

    @property
    def upstream_id(self) -> str:
        return self.upstream or self.name


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


class GatewayConfig(_Section):
    """The whole config file."""

    # The file it was loaded from (None: built in, or built in code); the registry records it.
    _source: str | None = PrivateAttr(default=None)

    providers: list[ProviderConfig] = Field(default_factory=list)
    models: list[ModelConfig] = Field(default_factory=list)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    deployments: dict[str, DeploymentSettings] = Field(default_factory=dict)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    actors: ActorSettings = Field(default_factory=ActorSettings)

    @property
    def source(self) -> str | None:
        return self._source

    def from_file(self, path: str | None) -> GatewayConfig:
        """This config, noting the file it came from."""
        self._source = path
        return self

    @model_validator(mode="after")
    def _cross_references(self) -> GatewayConfig:
        for name in self.deployments:
            if name not in DEPLOYMENT_NAMES:
                raise _FieldError(
                    f"deployments.{name}", f"one of {', '.join(DEPLOYMENT_NAMES)}, got '{name}'"
                )
        providers: set[str] = set()
        for i, provider in enumerate(self.providers):
            if provider.name in providers:
                raise _FieldError(f"providers[{i}].name", f"unique, '{provider.name}' is repeated")
            providers.add(provider.name)
        names: set[str] = set()
        types = {p.name: p.type for p in self.providers}
        for i, model in enumerate(self.models):
            if model.provider not in providers:
                raise _FieldError(
                    f"models[{i}].provider",
                    f"one of the providers' names {sorted(providers)}, got '{model.provider}'",
                )
            _check_capabilities(f"models[{i}]", model, types[model.provider])
            for j, name in enumerate([model.name, *model.aliases]):
                if name in names:
                    where = f"models[{i}].name" if j == 0 else f"models[{i}].aliases[{j - 1}]"
                    raise _FieldError(
                        where, f"a name no other model or alias has, '{name}' is taken"
                    )
                names.add(name)
        for i, model in enumerate(self.models):
            for j, fallback in enumerate(model.fallbacks):
                if fallback not in names or fallback in (model.name, *model.aliases):
                    raise _FieldError(
                        f"models[{i}].fallbacks[{j}]", f"another model's name, got '{fallback}'"
                    )
        return self

    def provider(self, name: str) -> ProviderConfig:
        return next(p for p in self.providers if p.name == name)


def _check_capabilities(where: str, model: ModelConfig, provider_type: str) -> None:
    """A model may declare only what its provider type's adapter can serve."""
    # Imported here: the providers package imports this module.
    from gateway.providers.support import support

    if model.facts:  # an empty `facts` (a dumped config read back) is harmless
        raise _FieldError(
            f"{where}.facts", "no `facts`: the gateway records where values come from"
        )
    served = support(provider_type).capabilities
    for j, capability in enumerate(model.capabilities):
        if capability not in served:
            raise _FieldError(
                f"{where}.capabilities[{j}]",
                f"a capability provider type '{provider_type}' serves "
                f"({', '.join(sorted(served))}), got '{capability}'",
            )


class _FieldError(ValueError):
    def __init__(self, path: str, expected: str) -> None:
        super().__init__(f"{path}: expected {expected}")
        self.path = path


def _describe(error: dict[str, Any]) -> str:
    path = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
    ).lstrip(".")
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown field (check its spelling and the config reference)"
    if kind == "missing":
        return f"{path}: required field is missing"
    if kind == "value_error" and isinstance(error.get("ctx", {}).get("error"), _FieldError):
        return str(error["ctx"]["error"])
    got = error.get("input")
    shown = f", got {got!r}" if not isinstance(got, (dict, list)) else ""
    message = error["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
    return f"{path}: expected {message}{shown}"


def parse_config(data: Any, source: str = "<config>") -> GatewayConfig:
    """Validate a loaded config mapping; errors name `source`, each field path and expectation."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(data).__name__}"
        )
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        problems = "\n".join(f"  {_describe(e)}" for e in exc.errors())
        raise ConfigError(f"{source}: invalid config\n{problems}") from None


def load_config(path: str | Path | None = None) -> GatewayConfig:
    """Load the config file at `path`, or the built-in default when `path` is None."""
    if path is None:
        text = resources.files("gateway").joinpath("default_config.yaml").read_text()
        return parse_config(yaml.safe_load(text), "<built-in default config>")
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data, str(path)).from_file(str(path.resolve()))


def state_dir() -> Path:
    """LLMGW_HOME (default ~/.llmgw): the SQLite file, the admin key, logs.

    Created 0700; an existing one that another user owns, or that others may write, is
    refused: whoever can write there can swap the admin key or the database.
    """
    home = Path(os.environ.get("LLMGW_HOME") or Path.home() / ".llmgw").expanduser()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = home.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise ConfigError(
            f"{home}: the state directory (LLMGW_HOME) must belong to this user and be "
            f"writable by no one else (mode {info.st_mode & 0o777:o}); run "
            f"'chmod 700 {home}' or point LLMGW_HOME at a private directory"
        )
    return home


def store_url(config: GatewayConfig) -> str:
    return config.store.url or f"sqlite:///{state_dir() / 'llmgw.db'}"
