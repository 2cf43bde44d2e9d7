"""The Router deployment, for `routing.placement: router`.

By default the ingress runs the fallback chain itself (one handle hop: ingress -> pool). With
`placement: router`, a separately scaled Router runs it (ingress -> router -> pool, one more
hop): fewer router replicas than ingress replicas share one view of circuit breakers and
retries, at a few milliseconds a request. The ingress still plans the route on its snapshot.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from ray import serve

from deployments.pool import RAY_ERRORS, relay, replica_upstream, unwrap
from gateway.config import GatewayConfig, ProviderConfig, RoutingConfig
from gateway.pipeline.invoker import Invocation, Invoker, StreamStart
from gateway.providers.framing import Completed, StreamHead, StreamItem
from gateway.routing import CircuitBoard, RouteDecision


@dataclass(slots=True)
class StreamOpened:
    """The Router's first stream item: which model answered, after which attempts."""

    invocation: Invocation
    total_deadline_in_s: float


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=2000)
class Router:
    """Runs route decisions' fallback chains against the provider pools."""

    def __init__(self, config: GatewayConfig, pools: dict[str, Any]) -> None:
        circuits = CircuitBoard(config.routing.circuit)
        upstream = replica_upstream(pools, config.server.inline_providers)
        self.invoker = Invoker(upstream, config.routing, circuits)

    async def complete(
        self,
        request: Any,
        decision: RouteDecision,
        providers: Mapping[str, ProviderConfig],
        embeddings: bool,
    ) -> tuple[Completed, Invocation]:
        invocation = Invocation()
        result = await self.invoker.complete(request, decision, providers, invocation, embeddings)
        return result, invocation

    async def stream(
        self, request: Any, decision: RouteDecision, providers: Mapping[str, ProviderConfig]
    ) -> AsyncIterator[StreamOpened | StreamItem]:
        invocation = Invocation()
        start = await self.invoker.stream(request, decision, providers, invocation)
        yield StreamOpened(invocation, start.total_deadline - self.invoker.clock())
        yield start.head
        for item in start.prefix:
            yield item
        async for item in start.rest:
            yield item


class RouterInvoker:
    """The ingress's invoker when a Router deployment runs the fallback chains.

    Its circuit board mirrors the outcomes the Router reports, so planning still skips
    models that are failing.
    """

    def __init__(self, router: Any, config: RoutingConfig) -> None:
        self.router = router
        self.router_streams = router.options(stream=True)
        self.circuits = CircuitBoard(config.circuit)
        self.clock = time.monotonic

    def _mirror(self, invocation: Invocation) -> None:
        now = self.clock()
        for attempt in invocation.attempts:
            breaker = self.circuits.get(attempt.provider, attempt.model)
            breaker.record(not attempt.upstream_failed, now)

    async def complete(
        self,
        request: Any,
        decision: RouteDecision,
        providers: Mapping[str, ProviderConfig],
        invocation: Invocation,
        embeddings: bool = False,
    ) -> Completed:
        try:
            result, remote = await self.router.complete.remote(
                request, decision, providers, embeddings
            )
        except RAY_ERRORS as error:
            raise unwrap(error) from None
        invocation.model, invocation.attempts = remote.model, remote.attempts
        self._mirror(remote)
        return result

    async def stream(
        self,
        request: Any,
        decision: RouteDecision,
        providers: Mapping[str, ProviderConfig],
        invocation: Invocation,
    ) -> StreamStart:
        items = relay(self.router_streams.stream.remote(request, decision, providers))
        opened = await anext(items)
        head = await anext(items)
        assert isinstance(opened, StreamOpened) and isinstance(head, StreamHead)
        invocation.model, invocation.attempts = opened.invocation.model, opened.invocation.attempts
        self._mirror(opened.invocation)
        assert invocation.model is not None
        deadline = self.clock() + opened.total_deadline_in_s
        return StreamStart(invocation.model, head, [], items, deadline)
