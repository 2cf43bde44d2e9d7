"""The gateway's config file: providers, models, routing, pipeline, server and store settings.

Every field is checked at start; an error names the file, the field path and what was expected.
`catalog` holds providers and models, `settings` the operating sections; this module the whole
file, how it is read, and where the gateway keeps its state.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, PrivateAttr, ValidationError, model_validator

from gateway.config.catalog import (
    USE_CASES,
    Capability,
    ConfigError,
    ModelConfig,
    ModelStatus,
    Price,
    ProviderConfig,
    ProviderType,
    PublishedQuality,
    SimSettings,
    Strategy,
    Timeouts,
    UseCase,
    _FieldError,
    _Section,
)
from gateway.config.settings import (
    DEFAULT_STEPS,
    DEPLOYMENT_NAMES,
    ActorSettings,
    AuthConfig,
    CircuitConfig,
    DeploymentSettings,
    HealthConfig,
    ObservabilityConfig,
    PipelineConfig,
    RegistryConfig,
    RetryConfig,
    RoutingConfig,
    ServerConfig,
    StoreConfig,
    TracingConfig,
    Weights,
)

__all__ = [
    "DEFAULT_STEPS",
    "DEPLOYMENT_NAMES",
    "USE_CASES",
    "ActorSettings",
    "AuthConfig",
    "Capability",
    "CircuitConfig",
    "ConfigError",
    "DeploymentSettings",
    "GatewayConfig",
    "HealthConfig",
    "ModelConfig",
    "ModelStatus",
    "ObservabilityConfig",
    "PipelineConfig",
    "Price",
    "ProviderConfig",
    "ProviderType",
    "PublishedQuality",
    "RegistryConfig",
    "RetryConfig",
    "RoutingConfig",
    "ServerConfig",
    "SimSettings",
    "StoreConfig",
    "Strategy",
    "Timeouts",
    "TracingConfig",
    "UseCase",
    "Weights",
    "load_config",
    "parse_config",
    "state_dir",
    "store_url",
]


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
