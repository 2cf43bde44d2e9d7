"""The registry actor: one named, detached owner of the model registry for the whole cluster.

Replicas never call it on the request path. Each holds a snapshot and keeps a `watch` long poll
open, which returns the moment the registry or its live statistics move on. The actor restores
itself from the store when Ray restarts it.

Everything that changes the registry (and so may write to the store) runs on one worker
thread, in the order it arrived: a slow or locked database delays changes, never the event
loop that answers every replica's `watch`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import ray
from ray.actor import ActorHandle

from deployments.long_poll import ChangeSignal
from gateway.config import GatewayConfig, HealthConfig, ModelConfig
from gateway.observability.health import HealthChecker
from gateway.registry.registry import Registry
from gateway.registry.snapshot import RegistrySnapshot
from gateway.registry.stats import CallSample
from gateway.store import Store

log = logging.getLogger("llmgw.registry")

REGISTRY_NAME = "llmgw-registry"
NAMESPACE = "llmgw"

T = TypeVar("T")


# Calls whose retry after an actor restart is safe: reads, and changes that are no-ops when
# repeated (registering the same model or applying the same update twice changes nothing).
# Removals are not: a retried removal would answer "not found" for a removal that happened.
@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class RegistryActor:
    """The `Registry` over the store, with long-poll `watch` for replicas' snapshots."""

    def __init__(
        self,
        config: GatewayConfig | None,
        store_url: str,
        stats_interval_s: float = 1.0,
        resources: Mapping[str, float] | None = None,
    ) -> None:
        store = Store(store_url)
        store.migrate()
        self._registry = Registry.open(store, stats_interval_s=stats_interval_s)
        # A restart restores what the store holds: the config this actor was created with may
        # be older than one applied since (`apply_config`), so it is applied again only if it
        # never was (the first start died before seeding).
        restarted = bool(ray.get_runtime_context().was_current_actor_reconstructed)
        if config is not None and not (restarted and self._registry.config_hash is not None):
            self._registry.apply_config(config)
        self._stats_interval_s = stats_interval_s
        # One thread: changes stay serialised, as they were on the loop.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmgw-registry")
        self._changed = ChangeSignal()
        self._ticker: asyncio.Task[None] | None = None
        self._health = HealthChecker(
            config.observability.health if config is not None else HealthConfig(), _adapter
        )
        self._prober: asyncio.Task[None] | None = None
        log.info(
            "registry actor up at version %d with %d models (%r)",
            self._registry.version,
            len(self._registry.models),
            store,
        )

    # ------------------------------------------------------------------ changes

    async def register_model(
        self, model: ModelConfig | Mapping[str, Any], who: str = "admin"
    ) -> int:
        """Add a model; returns the registry version."""
        return self._changed_to(await self._write(self._registry.register_model, model, who))

    async def update_model(self, name: str, changes: Mapping[str, Any], who: str = "admin") -> int:
        """Change fields of a model (nested mappings merge); returns the registry version."""
        return self._changed_to(await self._write(self._registry.update_model, name, changes, who))

    async def deprecate(self, name: str) -> int:
        """Mark a model deprecated; returns the registry version."""
        return self._changed_to(await self._write(self._registry.deprecate, name))

    @ray.method(max_task_retries=0)
    async def remove(self, name: str) -> int:
        """Remove a model; returns the registry version."""
        return self._changed_to(await self._write(self._registry.remove, name))

    async def apply_config(self, config: GatewayConfig) -> int:
        """Upsert a (changed) config file's providers and models; returns the version."""
        return self._changed_to(await self._write(self._registry.apply_config, config))

    async def plan_config(self, config: GatewayConfig) -> dict[str, list[str]]:
        """What applying `config` would change (nothing is applied)."""
        return (await self._write(self._registry.plan_config, config)).summary()

    # ------------------------------------------------------------------ reading

    async def snapshot(self) -> RegistrySnapshot:
        """The current snapshot."""
        self._start_ticker()
        return self._registry.snapshot()

    async def watch(
        self, known_version: int, known_stats_version: int, timeout_s: float
    ) -> RegistrySnapshot | None:
        """Long poll: the snapshot as soon as either version differs from the known ones,
        or None after `timeout_s`. A replica calls it again as soon as it returns."""
        self._start_ticker()
        registry = self._registry
        # "Differs", not "is past": a replica must also follow a store that was reset.
        if await self._changed.wait_until(
            lambda: (
                registry.version != known_version or registry.stats_version != known_stats_version
            ),
            timeout_s,
        ):
            return registry.snapshot()
        return None

    async def report(self, samples: list[CallSample]) -> None:
        """Call samples from a replica (sent in batches about once a second)."""
        self._start_ticker()
        if await self._write(self._registry.record, samples):
            self._notify()

    async def health(self) -> dict[str, Any]:
        """Each provider's last probe: state, when, latency, error."""
        self._start_ticker()
        return {name: h.__dict__ for name, h in self._registry.snapshot().health.items()}

    async def probe_now(self) -> dict[str, Any]:
        """Probe every provider now (tests; `llmgw status` does not wait for it)."""
        await self._probe_round()
        return await self.health()

    async def status(self) -> dict[str, Any]:
        """Versions and sizes, for `llmgw status` and health checks."""
        registry = self._registry
        return {
            "version": registry.version,
            "stats_version": registry.stats_version,
            "models": len(registry.models),
            "providers": sorted(registry.providers),
            "pid": os.getpid(),
        }

    # ------------------------------------------------------------------ internals

    async def _write(self, change: Callable[..., T], *args: Any) -> T:
        """Run `change` on the writer thread, after every change that came before it."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, change, *args)

    def _changed_to(self, version: int) -> int:
        self._start_ticker()
        self._notify()
        return version

    def _notify(self) -> None:
        self._changed.notify()

    def _start_ticker(self) -> None:
        # Started from the first call, inside the actor's event loop.
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick())
        if self._prober is None or self._prober.done():
            self._prober = asyncio.get_running_loop().create_task(self._probe_forever())

    async def _probe_forever(self) -> None:
        """Probe providers and re-discover Ollama's models, once an interval."""
        while True:
            try:
                await self._probe_round()
            except Exception:
                log.exception("registry: probing providers failed")
            await asyncio.sleep(self._health.config.interval_s)

    async def _probe_round(self) -> None:
        providers = list(self._registry.providers.values())
        if await self._write(self._registry.set_health, await self._health.check(providers)):
            self._notify()
        registry = self._registry
        for model in await self._health.installed(providers):
            taken = model.name in registry.models or any(
                model.name in m.aliases
                or (m.provider, m.upstream_id) == (model.provider, model.upstream_id)
                for m in registry.models.values()
            )
            if not taken:
                log.info("registry: %s has a newly installed model %s", model.provider, model.name)
                await self.register_model(model, who="discovery")

    async def _tick(self) -> None:
        """Publish stats that changed, or aged out with no traffic, at most once an interval."""
        while True:
            await asyncio.sleep(self._stats_interval_s)
            try:
                if await self._write(self._registry.refresh_stats):
                    self._notify()
            except Exception:
                log.exception("registry: refreshing stats failed")


def _adapter(provider: Any) -> Any:
    from gateway.providers import build_provider

    return build_provider(provider)


def get_or_create_registry(
    config: GatewayConfig | None,
    store_url: str,
    *,
    name: str = REGISTRY_NAME,
    namespace: str = NAMESPACE,
    stats_interval_s: float = 1.0,
    resources: Mapping[str, float] | None = None,
) -> ActorHandle:
    """The cluster's registry actor, started (detached) by the first caller.

    A running actor ignores `config`; call its `apply_config` to apply a changed file.
    """
    return RegistryActor.options(
        name=name,
        namespace=namespace,
        lifetime="detached",
        get_if_exists=True,
        **({"resources": resources} if resources else {}),
    ).remote(config, store_url, stats_interval_s)
