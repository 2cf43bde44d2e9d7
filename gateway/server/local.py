"""The whole gateway in one process, without Ray: for tests, notebooks and debugging.

Same pipeline, routing, invoker and HTTP API as a Serve replica; the registry lives in memory
(or in a store), providers are called in-process, and records are kept in lists.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import Any

from gateway.auth import KeyRing, Principal
from gateway.config import GatewayConfig
from gateway.pipeline.context import Services
from gateway.pipeline.invoker import Invoker
from gateway.pipeline.upstream import LocalUpstream, Upstream
from gateway.registry.registry import Registry
from gateway.registry.stats import CallSample
from gateway.routing import CircuitBoard
from gateway.server.runtime import GatewayRuntime
from gateway.store import Store
from gateway.tenancy.backend import DirectoryBackend
from gateway.tenancy.directory import Directory
from gateway.usage.records import AuditEvent, UsageRecord


@dataclass
class MemoryRecorder:
    """Keeps every record in lists; samples feed the registry's live statistics."""

    registry: Registry
    usages: list[UsageRecord] = field(default_factory=list)
    audits: list[AuditEvent] = field(default_factory=list)
    samples: list[CallSample] = field(default_factory=list)

    def usage(self, record: UsageRecord) -> None:
        self.usages.append(record)

    def audit(self, event: AuditEvent) -> None:
        self.audits.append(event)

    def sample(self, sample: CallSample) -> None:
        self.samples.append(sample)
        self.registry.record([sample])


class RegistryAdmin:
    """`AdminBackend` over an in-process `Registry`."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def register_model(self, model: dict[str, Any], who: str) -> int:
        return self.registry.register_model(model, who)

    async def update_model(self, name: str, changes: dict[str, Any], who: str) -> int:
        return self.registry.update_model(name, changes, who)

    async def remove_model(self, name: str) -> int:
        return self.registry.remove(name)

    async def plan_config(self, config: GatewayConfig) -> dict[str, list[str]]:
        return self.registry.plan_config(config).summary()

    async def status(self) -> dict[str, Any]:
        return {"applications": {}, "process": platform.node()}


@dataclass
class LocalGateway:
    """A runtime plus handles on its parts, for assertions."""

    runtime: GatewayRuntime
    registry: Registry
    recorder: MemoryRecorder
    upstream: Upstream


def local_gateway(
    config: GatewayConfig,
    admin_key_hash: str,
    *,
    principals: dict[str, Principal] | None = None,
    upstream: Upstream | None = None,
    registry: Registry | None = None,
    store: Store | None = None,
) -> LocalGateway:
    """A ready `GatewayRuntime` over `config`, with the admin key and any extra principals."""
    registry = registry or Registry(version=1, providers=config.providers, models=config.models)
    upstream = upstream or LocalUpstream()
    recorder = MemoryRecorder(registry)
    if store is None:
        store = Store("sqlite://")  # tenants and keys in memory
        store.migrate()
    tenancy = DirectoryBackend(Directory(store))
    services = Services(
        config=config,
        snapshot=registry.snapshot,
        keys=KeyRing(admin_key_hash, access=lambda: tenancy.snapshot, extra=principals),
        invoker=Invoker(upstream, config.routing, CircuitBoard(config.routing.circuit)),
        recorder=recorder,
    )
    runtime = GatewayRuntime.build(services, RegistryAdmin(registry), tenancy)
    return LocalGateway(runtime, registry, recorder, upstream)
