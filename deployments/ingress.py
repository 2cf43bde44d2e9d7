"""The ingress deployment: the HTTP API, the pipeline, and routing on the pushed snapshot.

The hot path takes one handle hop, ingress -> provider pool (two with `routing.placement:
router`). Routing, retries, fallback and
circuit breakers run here on the registry snapshot the actor pushes; metering and audit leave
in batches. Nothing on the request path calls an actor.
"""

from __future__ import annotations

import logging
from typing import Any

from ray import serve

from deployments.admin import ActorAdmin
from deployments.pool import replica_upstream
from deployments.recorder import ReplicaRecorder
from deployments.registry_actor import get_or_create_registry
from deployments.router import RouterInvoker
from deployments.snapshot_feed import SnapshotFeed
from deployments.usage_writer import UsageSink, get_or_create_usage_writer
from gateway.auth import ADMIN, KeyRing
from gateway.config import GatewayConfig
from gateway.pipeline.context import Services
from gateway.pipeline.invoker import Invoker
from gateway.routing import CircuitBoard, prepare
from gateway.server.api import create_api
from gateway.server.runtime import GatewayRuntime

logger = logging.getLogger("llmgw.ingress")


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=2000)
@serve.ingress()
class Ingress:
    """One replica of the OpenAI-compatible API."""

    async def __init__(
        self,
        config: GatewayConfig,
        pools: dict[str, Any],
        admin_key_hash: str,
        store_url: str,
        router: Any = None,
        providers: list[dict[str, Any]] | None = None,
    ) -> None:
        registry = get_or_create_registry(config, store_url)
        self.feed = SnapshotFeed(
            registry,
            reconnect=lambda: get_or_create_registry(config, store_url),
            prepare=lambda snapshot: prepare(snapshot, config.routing),
        )
        await self.feed.start()
        self.sink = UsageSink(
            get_or_create_usage_writer(store_url),
            reconnect=lambda: get_or_create_usage_writer(store_url),
        )
        recorder = ReplicaRecorder(self.feed, self.sink)
        if router is None:
            circuits = CircuitBoard(config.routing.circuit)
            upstream = replica_upstream(pools, config.server.inline_providers)
            invoker: Any = Invoker(upstream, config.routing, circuits)
        else:
            invoker = RouterInvoker(router, config.routing)
        services = Services(
            config=config,
            snapshot=lambda: self.feed.current,
            keys=KeyRing({admin_key_hash: ADMIN}),
            invoker=invoker,
            recorder=recorder,
        )
        self.runtime = GatewayRuntime.build(
            services, ActorAdmin(registry, self.feed, providers or [])
        )

    def __serve_build_asgi_app__(self) -> Any:
        return create_api(self.runtime, request_ids=False)

    async def __del__(self) -> None:
        # Graceful stop: what is buffered reaches the writer before the replica goes.
        await self.sink.aclose()
        await self.feed.aclose()
