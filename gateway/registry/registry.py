"""The model registry: providers and models at a version, persisted on every change.

Pure logic, no Ray: the registry actor wraps one `Registry` and pushes its snapshots to
replicas. Every change is validated as a whole (names, aliases, providers, fallbacks), saved to
the store in one transaction, and only then applied, so memory never runs ahead of the store.

Beside it: `entries` checks and merges entries, `seed` reconciles with the config file,
`saving` writes a change to the store, and `live` publishes call statistics and health.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gateway.config import GatewayConfig, ModelConfig, ProviderConfig
from gateway.errors import ConflictError, ModelNotFoundError, NotFoundError
from gateway.registry.entries import (
    check_model,
    check_provider_unused,
    check_unreferenced,
    owners_of,
    updated_model,
    updated_provider,
    validated,
)
from gateway.registry.live import LiveStats
from gateway.registry.origin import Key, Origin
from gateway.registry.saving import save_change
from gateway.registry.seed import Reconciliation, config_digest, reconcile
from gateway.registry.snapshot import ProviderHealth, RegistrySnapshot
from gateway.registry.stats import CallSample
from gateway.store import Store

log = logging.getLogger(__name__)


class Registry:
    """Providers and models at a monotonically increasing version, plus live call statistics.

    With a store, every change is saved before it is applied; without one it lives in memory.
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        version: int = 0,
        providers: Iterable[ProviderConfig] = (),
        models: Iterable[ModelConfig] = (),
        config_hash: str | None = None,
        config_path: str | None = None,
        origins: Mapping[Key, Origin] | None = None,
        clock: Callable[[], float] = time.time,
        stats_interval_s: float = 1.0,
    ) -> None:
        self._store = store
        self._version = version
        self._config_hash = config_hash
        self._config_path = config_path
        self._origins: dict[Key, Origin] = dict(origins or {})
        self._providers: dict[str, ProviderConfig] = {p.name: p for p in providers}
        self._models: dict[str, ModelConfig] = {m.name: m for m in models}
        self._owners = owners_of(self._models)
        self._live = LiveStats(clock, stats_interval_s)
        self._snapshot: RegistrySnapshot | None = None

    @classmethod
    def open(
        cls,
        store: Store,
        config: GatewayConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        stats_interval_s: float = 1.0,
    ) -> Registry:
        """The registry as saved in `store`, reconciled with the config file's providers and models.

        An empty store takes the config's; a store seeded from a different config takes the
        config's as upserts (config wins for what it names; models added through the API stay);
        a store seeded from this very config wins.
        """
        state = store.load_registry()
        registry = cls(
            store,
            version=state.version,
            providers=state.providers,
            models=state.models,
            config_hash=state.config_hash,
            config_path=state.config_path,
            origins={
                key: origin
                for key, data in state.origins.items()
                if (origin := Origin.from_json(data)) is not None
            },
            clock=clock,
            stats_interval_s=stats_interval_s,
        )
        if config is not None:
            registry.apply_config(config)
        return registry

    def plan_config(self, config: GatewayConfig) -> Reconciliation:
        """What applying `config` would add, change, remove and deprecate (nothing is saved)."""
        return reconcile(self._providers, self._models, self._origins, config, config.source)

    def apply_config(self, config: GatewayConfig) -> int:
        """Reconcile the registry with the config file (see `gateway.registry.seed`), unless
        this very file was the last one applied. Returns the version."""
        digest = config_digest(config)
        if digest == self._config_hash:
            return self._version
        plan = self.plan_config(config)
        saved = [
            entry
            for kind, entries, before in (
                ("provider", plan.providers, self._providers),
                ("model", plan.models, self._models),
            )
            for name, entry in entries.items()
            if before.get(name) != entry
            or self._origins.get((kind, name)) != plan.origins.get((kind, name))  # type: ignore[arg-type]
        ]
        log.info(
            "registry: reconciled with %s at version %d: %s",
            config.source or "the built-in config",
            self._version + 1,
            {k: v for k, v in plan.summary().items() if v},
        )
        version = self._commit(
            providers=plan.providers,
            models=plan.models,
            saved=saved,
            deleted_models=[n for n in self._models if n not in plan.models],
            deleted_providers=[n for n in self._providers if n not in plan.providers],
            config_hash=digest,
            config_path=config.source,
            origins=plan.origins,
        )
        self._config_hash = digest
        self._config_path = config.source
        return version

    # ------------------------------------------------------------------ reading

    @property
    def version(self) -> int:
        return self._version

    @property
    def stats_version(self) -> int:
        return self._live.version

    @property
    def config_hash(self) -> str | None:
        """The digest of the config file last applied (None: never seeded from one)."""
        return self._config_hash

    @property
    def config_path(self) -> str | None:
        """The path of the config file last applied (None: built in)."""
        return self._config_path

    @property
    def origins(self) -> Mapping[Key, Origin]:
        return self._origins

    @property
    def models(self) -> Mapping[str, ModelConfig]:
        return self._models

    @property
    def providers(self) -> Mapping[str, ProviderConfig]:
        return self._providers

    def snapshot(self) -> RegistrySnapshot:
        """The current snapshot; built once per version, re-dressed with fresher stats."""
        snap, live = self._snapshot, self._live
        if snap is None or snap.version != self._version:
            snap = RegistrySnapshot(
                self._version,
                self._providers,
                self._models,
                live.stats,
                live.version,
                origins={
                    name: origin.to_json()
                    for (kind, name), origin in self._origins.items()
                    if kind == "model"
                },
                config_source={"path": self._config_path, "hash": self._config_hash},
                health=live.health,
            )
        elif snap.stats_version != live.version:
            snap = snap.with_stats(live.stats, live.version, live.health)
        self._snapshot = snap
        return snap

    # ------------------------------------------------------------------ providers

    def register_provider(
        self, provider: ProviderConfig | Mapping[str, Any], who: str = "admin"
    ) -> int:
        """Add a provider; registering the same one again changes nothing. Returns the version."""
        provider = validated(ProviderConfig, provider, "provider")
        existing = self._providers.get(provider.name)
        if existing == provider:
            return self._version
        if existing is not None:
            raise ConflictError(
                f"provider '{provider.name}' is already registered; update it instead",
                param="name",
            )
        return self._commit(
            providers={**self._providers, provider.name: provider},
            saved=[provider],
            origins={**self._origins, ("provider", provider.name): Origin.admin(who)},
        )

    def update_provider(self, name: str, changes: Mapping[str, Any], who: str = "admin") -> int:
        """Change some fields of a provider (nested mappings are merged). Returns the version."""
        current = self._providers.get(name)
        if current is None:
            raise NotFoundError(f"no provider named '{name}'", param="name")
        updated = updated_provider(name, current, changes)
        if updated == current:
            return self._version
        return self._commit(
            providers={**self._providers, name: updated},
            saved=[updated],
            origins=self._changed_by(("provider", name), who),
        )

    def remove_provider(self, name: str) -> int:
        """Remove a provider no model uses. Returns the version."""
        if name not in self._providers:
            raise NotFoundError(f"no provider named '{name}'", param="name")
        check_provider_unused(name, self._models)
        providers = {k: v for k, v in self._providers.items() if k != name}
        origins = {k: v for k, v in self._origins.items() if k != ("provider", name)}
        return self._commit(providers=providers, deleted_providers=[name], origins=origins)

    # ------------------------------------------------------------------ models

    def register_model(self, model: ModelConfig | Mapping[str, Any], who: str = "admin") -> int:
        """Add a model; registering the same one again changes nothing. Returns the version."""
        model = validated(ModelConfig, model, "model")
        existing = self._models.get(model.name)
        if existing == model:
            return self._version
        if existing is not None:
            raise ConflictError(
                f"model '{model.name}' is already registered; update it instead", param="model"
            )
        check_model(model, self._providers, self._owners)
        return self._commit(
            models={**self._models, model.name: model},
            saved=[model],
            origins={**self._origins, ("model", model.name): Origin.admin(who)},
        )

    def update_model(self, name: str, changes: Mapping[str, Any], who: str = "admin") -> int:
        """Change some fields of a model, validated as a whole; nested mappings (price,
        timeouts, sim) are merged, other values replace. Returns the version."""
        current = self._require(name)
        updated = updated_model(name, current, changes)
        if updated == current:
            return self._version
        check_model(updated, self._providers, self._owners)
        dropped = set(current.aliases) - set(updated.aliases)
        check_unreferenced(name, dropped, self._models, "drop alias(es)")
        return self._commit(
            models={**self._models, name: updated},
            saved=[updated],
            origins=self._changed_by(("model", name), who),
        )

    def deprecate(self, name: str, who: str = "admin") -> int:
        """Mark a model deprecated: still served when named, no longer picked by routing."""
        return self.update_model(name, {"status": "deprecated"}, who)

    def remove(self, name: str) -> int:
        """Remove a model no other model falls back to. Returns the version."""
        current = self._require(name)
        check_unreferenced(name, {name, *current.aliases}, self._models, "remove it")
        models = {k: v for k, v in self._models.items() if k != name}
        self._live.forget(name)
        origins = {k: v for k, v in self._origins.items() if k != ("model", name)}
        return self._commit(models=models, deleted_models=[name], origins=origins)

    # ------------------------------------------------------------------ live statistics

    def record(self, samples: Iterable[CallSample]) -> bool:
        """Add call samples; True when this published new stats (a new `stats_version`)."""
        return self._live.record(samples, self._models)

    def set_health(self, health: Mapping[str, ProviderHealth]) -> bool:
        """Publish providers' probe results with the live statistics; True when published."""
        return self._live.set_health(health, self._providers)

    def refresh_stats(self, now: float | None = None) -> bool:
        """Publish new stats when samples arrived or aged out, at most once per interval.

        Call it periodically: stats change as old calls leave the window even with no traffic.
        """
        return self._live.refresh(self._models, now)

    # ------------------------------------------------------------------ internals

    def _require(self, name: str) -> ModelConfig:
        model = self._models.get(name)
        if model is not None:
            return model
        owner = self._owners.get(name)
        hint = f"; '{name}' is an alias of '{owner}'" if owner else ""
        raise ModelNotFoundError(f"no model named '{name}'{hint}", param="model")

    def _changed_by(self, key: Key, who: str) -> dict[Key, Origin]:
        origin = self._origins.get(key)
        return {**self._origins, key: origin.changed_by(who) if origin else Origin.admin(who)}

    def _commit(
        self,
        *,
        providers: dict[str, ProviderConfig] | None = None,
        models: dict[str, ModelConfig] | None = None,
        saved: Iterable[ModelConfig | ProviderConfig] = (),
        deleted_models: Iterable[str] = (),
        deleted_providers: Iterable[str] = (),
        config_hash: str | None = None,
        config_path: str | None = None,
        origins: dict[Key, Origin] | None = None,
    ) -> int:
        """Save a change, then make it current (new dicts: snapshots already out stay intact)."""
        version = self._version + 1
        if self._store is not None:
            save_change(
                self._store,
                version,
                saved=saved,
                deleted_models=deleted_models,
                deleted_providers=deleted_providers,
                config_hash=config_hash,
                config_path=config_path,
                origins=origins or self._origins,
            )
        if origins is not None:
            self._origins = origins
        if providers is not None:
            self._providers = providers
        if models is not None:
            self._models = models
            self._owners = owners_of(models)
            self._live.keep_only(models)
        self._version = version
        return version
