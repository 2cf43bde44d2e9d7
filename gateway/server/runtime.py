"""Everything the HTTP layer needs in one replica: pipeline, services, and the admin backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gateway.config import GatewayConfig
from gateway.pipeline.context import Services
from gateway.pipeline.pipeline import Pipeline
from gateway.tenancy.backend import TenancyBackend


class AdminBackend(Protocol):
    """Registry changes and cluster facts, served off the request path (actor calls are fine).
    `who` is the key id of the admin making a change; the registry records it."""

    async def register_model(self, model: dict[str, Any], who: str) -> int: ...

    async def update_model(self, name: str, changes: dict[str, Any], who: str) -> int: ...

    async def remove_model(self, name: str) -> int: ...

    async def plan_config(self, config: GatewayConfig) -> dict[str, list[str]]: ...

    async def status(self) -> dict[str, Any]: ...


@dataclass
class GatewayRuntime:
    """One replica's gateway: what `create_api` serves."""

    services: Services
    pipeline: Pipeline
    admin: AdminBackend
    tenancy: TenancyBackend

    @classmethod
    def build(
        cls, services: Services, admin: AdminBackend, tenancy: TenancyBackend
    ) -> GatewayRuntime:
        return cls(services, Pipeline(services.config.pipeline, services), admin, tenancy)
