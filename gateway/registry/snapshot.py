"""A versioned, read-only view of the registry that replicas hold and route on.

The registry actor pushes a new snapshot whenever models, providers or live statistics change;
nothing on the request path calls the actor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.config import ModelConfig, ProviderConfig


@dataclass(frozen=True)
class ModelStats:
    """Live performance of one model over the registry's recent window."""

    requests: int = 0
    errors: int = 0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class ProviderHealth:
    """A provider's last health probe: routing skips an unhealthy provider's models."""

    state: str  # healthy | unhealthy | unprobed (nothing cheap to ask, e.g. the sim)
    checked_at: float  # epoch seconds
    latency_ms: float
    error: str | None = None

    @property
    def healthy(self) -> bool:
        return self.state != "unhealthy"


@dataclass(frozen=True)
class RegistrySnapshot:
    """Providers and models at one registry version, with indexes for name resolution."""

    version: int
    providers: dict[str, ProviderConfig]
    models: dict[str, ModelConfig]
    stats: dict[str, ModelStats] = field(default_factory=dict)
    stats_version: int = 0
    _names: dict[str, str] = field(default_factory=dict, repr=False)
    # Where each model came from (see `gateway.registry.origin`), and the config file last
    # reconciled with ({"path", "hash"}).
    origins: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    config_source: dict[str, str | None] = field(default_factory=dict, repr=False)
    # Each provider's last probe (published with the live statistics).
    health: dict[str, ProviderHealth] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = self._names
        if names:  # shared by `with_stats`: the models, hence the index, are the same
            return
        for model in self.models.values():
            names.setdefault(model.name, model.name)
            for alias in model.aliases:
                names.setdefault(alias, model.name)
            names.setdefault(f"{model.provider}/{model.upstream_id}", model.name)

    def resolve(self, name: str) -> ModelConfig | None:
        """The model a client means by a name, an alias or `provider/upstream`."""
        canonical = self._names.get(name)
        return self.models[canonical] if canonical is not None else None

    def stats_for(self, model: str) -> ModelStats:
        return self.stats.get(model) or ModelStats()

    def with_stats(
        self,
        stats: dict[str, ModelStats],
        stats_version: int,
        health: dict[str, ProviderHealth] | None = None,
    ) -> RegistrySnapshot:
        """The same models with fresher statistics and health (indexes are shared)."""
        return RegistrySnapshot(
            self.version,
            self.providers,
            self.models,
            stats,
            stats_version,
            self._names,
            self.origins,
            self.config_source,
            self.health if health is None else health,
        )

    def unhealthy_providers(self) -> frozenset[str]:
        """Providers whose last probe failed."""
        return frozenset(name for name, h in self.health.items() if not h.healthy)
