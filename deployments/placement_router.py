"""The Router deployment that places fallback chains, for `routing.placement: router`.

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

from deployments.live_settings import reconfigure_router
from deployments.pool import RAY_ERRORS, direct, relay, replica_upstream, unwrap
from deployments.registry_versions import Fetch, RegistryVersions, mismatch, registry_fetch
from deployments.side_channel_client import ChannelClient
from gateway.config import GatewayConfig, ProviderConfig, RoutingConfig
from gateway.errors import GatewayError
from gateway.pipeline.invoker import Invocation, Invoker, StreamStart
from gateway.pipeline.upstream import LATEST, CallKind, Request, UpstreamCall, parse_request
from gateway.providers.framing import Completed, StreamHead, StreamItem
from gateway.routing import CircuitBoard, RouteDecision
from gateway.routing.decision import Candidate


@dataclass(slots=True)
class ChainCall:
    """A fallback chain for the Router to run, as plain values: the candidates by name (with
    their score and reason), the registry version they were planned on, the request bytes."""

    kind: CallKind
    version: int
    body: bytes
    strategy: str
    candidates: list[tuple[str, float, str]]

    @classmethod
    def of(
        cls,
        kind: CallKind,
        request: Request,
        decision: RouteDecision,
        version: int,
        body: bytes | None,
    ) -> ChainCall:
        if body is None:
            # Any candidate's envelope dumps the request the same way.
            body = UpstreamCall(kind, "", "", version, request=request).wire()
        ranked = [(c.model.name, c.score, c.reason) for c in decision.candidates]
        return cls(kind, version, body, decision.strategy, ranked)


@dataclass(slots=True)
class ChainOutcome:
    """What a fallback chain in the Router came to: the answer, or the error it ended with,
    and every attempt either way (the ingress meters and audits them)."""

    invocation: Invocation
    result: Completed | None = None
    error: GatewayError | None = None


@dataclass(slots=True)
class StreamOpened:
    """The Router's first stream item: which model answered, after which attempts; or, with
    `error`, the attempts of a chain that opened no stream (and nothing follows)."""

    invocation: Invocation
    total_deadline_in_s: float
    error: GatewayError | None = None


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=2000)
class Router:
    """Runs route decisions' fallback chains against the provider pools."""

    def __init__(
        self, config: GatewayConfig, pools: dict[str, Any], fetch: Fetch | None = None
    ) -> None:
        circuits = CircuitBoard(config.routing.circuit)
        self.channel = ChannelClient.for_config(config.server.side_channel, config.actors.resources)
        upstream = replica_upstream(pools, config.server.inline_providers, self.channel)
        self.invoker = Invoker(upstream, config.routing, circuits)
        self.versions = RegistryVersions(fetch or registry_fetch())

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        await reconfigure_router(user_config)
        if self.channel is not None:
            self.channel.start()  # on the replica's event loop; once

    async def _planned(
        self, call: ChainCall
    ) -> tuple[Request, RouteDecision, Mapping[str, ProviderConfig]]:
        """The parsed request, the decision and the providers, from the call's registry
        version."""
        names = [name for name, _, _ in call.candidates]
        snapshot = await self.versions.at(call.version, names)
        missing = [name for name in names if name not in snapshot.models]
        if missing:
            raise mismatch(missing, snapshot.version, call.version)
        ranked = [Candidate(snapshot.models[n], score, why) for n, score, why in call.candidates]
        request = parse_request(call.kind, call.body)
        return request, RouteDecision(call.strategy, ranked), snapshot.providers

    async def complete(self, call: ChainCall) -> ChainOutcome:
        invocation = Invocation()
        try:
            request, decision, providers = await self._planned(call)
            result = await self.invoker.complete(
                request,
                decision,
                providers,
                invocation,
                call.kind == "embed",
                version=call.version,
                body=call.body,
            )
        except GatewayError as error:
            return ChainOutcome(invocation, error=error)
        return ChainOutcome(invocation, result)

    async def stream(self, call: ChainCall) -> AsyncIterator[StreamOpened | StreamItem]:
        invocation = Invocation()
        try:
            request, decision, providers = await self._planned(call)
            start = await self.invoker.stream(
                request, decision, providers, invocation, version=call.version, body=call.body
            )
        except GatewayError as error:
            yield StreamOpened(invocation, 0.0, error)
            return
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
        router = direct(router)
        self.router_complete = router.complete
        self.router_streams = router.options(stream=True).stream
        self.circuits = CircuitBoard(config.circuit)
        self.clock = time.monotonic

    def _mirror(self, invocation: Invocation) -> None:
        now = self.clock()
        for attempt in invocation.attempts:
            breaker = self.circuits.get(attempt.provider, attempt.model)
            breaker.record(not attempt.upstream_failed, now)

    def _adopt(self, remote: Invocation, invocation: Invocation) -> None:
        invocation.model, invocation.attempts = remote.model, remote.attempts
        self._mirror(remote)

    async def complete(
        self,
        request: Any,
        decision: RouteDecision,
        providers: Mapping[str, ProviderConfig],
        invocation: Invocation,
        embeddings: bool = False,
        *,
        version: int = LATEST,
        body: bytes | None = None,
    ) -> Completed:
        kind: CallKind = "embed" if embeddings else "complete"
        call = ChainCall.of(kind, request, decision, version, body)
        try:
            outcome = await self.router_complete.remote(call)
        except RAY_ERRORS as error:
            raise unwrap(error) from None
        self._adopt(outcome.invocation, invocation)
        if outcome.error is not None:
            raise outcome.error
        assert outcome.result is not None
        return outcome.result

    async def stream(
        self,
        request: Any,
        decision: RouteDecision,
        providers: Mapping[str, ProviderConfig],
        invocation: Invocation,
        *,
        version: int = LATEST,
        body: bytes | None = None,
    ) -> StreamStart:
        call = ChainCall.of("stream", request, decision, version, body)
        items = relay(self.router_streams.remote(call))
        opened = await anext(items)
        assert isinstance(opened, StreamOpened)
        self._adopt(opened.invocation, invocation)
        if opened.error is not None:
            await items.aclose()
            raise opened.error
        head = await anext(items)
        assert isinstance(head, StreamHead) and invocation.model is not None
        deadline = self.clock() + opened.total_deadline_in_s
        return StreamStart(invocation.model, head, [], items, deadline)
