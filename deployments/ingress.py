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

from deployments.access_actor import get_or_create_access
from deployments.access_feed import AccessFeed
from deployments.admin_backend import ActorAdmin
from deployments.live_settings import reconfigure_ingress
from deployments.placement_router import RouterInvoker
from deployments.pool import replica_upstream
from deployments.quota_actor import ActorLedger, get_or_create_quota_actor
from deployments.recorder import ReplicaRecorder
from deployments.registry_actor import get_or_create_registry
from deployments.replica_http import ReplicaHttp
from deployments.side_channel import IN_FLIGHT_METRIC
from deployments.side_channel_client import ChannelClient
from deployments.snapshot_feed import SnapshotFeed
from deployments.tenancy_admin import ActorTenancy
from deployments.usage_writer import UsageSink, get_or_create_usage_writer
from gateway.auth import KeyRing
from gateway.config import GatewayConfig
from gateway.observability.logs import configure_json_logs
from gateway.pipeline.context import Services
from gateway.pipeline.invoker import Invoker
from gateway.quota import LeaseBook
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
        listen: tuple[str, int] | None = None,
    ) -> None:
        if config.observability.json_logs:
            configure_json_logs()
        # The named actors go where `actors.resources` says (nodes that stay, on a cluster).
        placed = {"resources": config.actors.resources}
        registry = get_or_create_registry(config, store_url, **placed)
        self.feed = SnapshotFeed(
            registry,
            reconnect=lambda: get_or_create_registry(config, store_url, **placed),
            prepare=lambda snapshot: prepare(snapshot, config.routing),
        )
        await self.feed.start()
        access = lambda: get_or_create_access(store_url, **placed)  # noqa: E731
        self.access = AccessFeed(access(), reconnect=access)
        await self.access.start()
        writer = lambda: get_or_create_usage_writer(store_url, **placed)  # noqa: E731
        self.sink = UsageSink(writer(), reconnect=writer)
        recorder = ReplicaRecorder(self.feed, self.sink)
        self.channel = None
        if config.routing.placement != "router":
            circuits = CircuitBoard(config.routing.circuit)
            self.channel = ChannelClient.for_config(
                config.server.side_channel, config.actors.resources
            )
            if self.channel is not None:
                self.channel.start()
            upstream = replica_upstream(pools, config.server.inline_providers, self.channel)
            invoker: Any = Invoker(upstream, config.routing, circuits)
        else:
            invoker = RouterInvoker(router, config.routing)
        quota_actor = lambda: get_or_create_quota_actor(store_url, **placed)  # noqa: E731
        self.quotas = LeaseBook(ActorLedger(quota_actor(), reconnect=quota_actor))
        services = Services(
            config=config,
            snapshot=lambda: self.feed.current,
            keys=KeyRing(admin_key_hash, access=lambda: self.access.current),
            invoker=invoker,
            recorder=recorder,
            quotas=self.quotas,
        )
        self.runtime = GatewayRuntime.build(
            services, ActorAdmin(registry, self.feed, providers or []), ActorTenancy(self.access)
        )
        # `--http-mode ingress`: this replica serves HTTP itself; Serve runs no proxy.
        self.http = None
        if listen is not None:
            self.http = ReplicaHttp(create_api(self.runtime, request_ids=True), *listen)
            await self.http.start()

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        await reconfigure_ingress(user_config)

    def __serve_build_asgi_app__(self) -> Any:
        return create_api(self.runtime, request_ids=False)

    async def check_health(self) -> None:  # on the replica's loop: a blocked loop fails it
        if self.http is not None and not self.http.alive():
            raise RuntimeError(f"the HTTP listener on {self.http.address} is closed")

    def record_autoscaling_stats(self) -> dict[str, float]:
        """For Serve's autoscaler: requests this replica serves itself, which Serve cannot
        count (`side_channel.autoscaling_policy` adds them)."""
        return {IN_FLIGHT_METRIC: self.http.in_flight if self.http is not None else 0}

    async def __del__(self) -> None:
        if self.http is not None:
            await self.http.aclose()  # requests in flight finish first
        # Graceful stop: what is buffered reaches the writer before the replica goes.
        await self.quotas.aclose()  # leases not spent go back for other replicas
        tracer = self.runtime.pipeline.tracer
        if tracer is not None:
            tracer.shutdown()  # spans still buffered leave now
        await self.sink.aclose()
        await self.feed.aclose()
        await self.access.aclose()
        if self.channel is not None:
            self.channel.aclose()
