"""The admin backend replicas use: registry changes go to the registry actor (off the hot path)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ray import serve

from deployments.observability import metrics_endpoints
from deployments.pool import RAY_ERRORS, unwrap
from gateway.config import GatewayConfig


async def call_actor(method: Any, *args: Any) -> Any:
    try:
        return await method.remote(*args)
    except RAY_ERRORS as error:
        raise unwrap(error) from None


class ActorAdmin:
    """`AdminBackend` over the registry actor and Serve's own status.

    A change returns once this replica holds the new version, so the caller's next request
    sees it (other replicas follow within the watch round trip).
    """

    def __init__(self, registry: Any, feed: Any, providers: list[dict[str, Any]]) -> None:
        self.registry = registry
        self.feed = feed
        self.providers = providers

    async def _change(self, method: Any, *args: Any) -> int:
        version = await call_actor(method, *args)
        with contextlib.suppress(TimeoutError):
            await self.feed.wait_for_version(version, timeout_s=5.0)
        return version

    async def register_model(self, model: dict[str, Any], who: str) -> int:
        return await self._change(self.registry.register_model, model, who)

    async def update_model(self, name: str, changes: dict[str, Any], who: str) -> int:
        return await self._change(self.registry.update_model, name, changes, who)

    async def remove_model(self, name: str) -> int:
        return await self._change(self.registry.remove, name)

    async def plan_config(self, config: GatewayConfig) -> dict[str, list[str]]:
        return await call_actor(self.registry.plan_config, config)

    async def status(self) -> dict[str, Any]:
        # serve.status() blocks on the controller: keep it off this replica's event loop.
        status = await asyncio.to_thread(serve.status)
        apps = {}
        for app_name, app in status.applications.items():
            apps[app_name] = {
                "status": str(app.status.value if hasattr(app.status, "value") else app.status),
                "deployments": {
                    name: {
                        "status": str(getattr(d.status, "value", d.status)),
                        "replicas": dict(d.replica_states),
                    }
                    for name, d in app.deployments.items()
                },
            }
        metrics = await asyncio.to_thread(metrics_endpoints)
        health = {name: h.__dict__ for name, h in self.feed.current.health.items()}
        return {
            "applications": apps,
            "providers": self.providers,
            "metrics": metrics,
            "health": health,
        }
