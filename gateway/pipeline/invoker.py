"""Calling the candidates of a route decision: retries with backoff, fallback, circuit breakers,
and per-model timeouts. A stream falls back only before any of it reached the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gateway.config import ModelConfig, ProviderConfig, RoutingConfig
from gateway.errors import (
    GatewayError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gateway.pipeline.upstream import Upstream
from gateway.providers.framing import Completed, StreamHead, StreamItem
from gateway.routing import CircuitBoard, RetryPolicy, RouteDecision

T = TypeVar("T")


def counts_against_circuit(error: GatewayError) -> bool:
    """Upstream trouble opens a circuit; a client's own bad request does not, nor an answer
    that misses the client's own schema (its class sets `counts_against_circuit` False)."""
    if not error.counts_against_circuit:
        return False
    return error.status_code >= 500 or error.status_code in (408, 429)


def falls_back(error: GatewayError) -> bool:
    """Whether another candidate may succeed where this one failed."""
    return counts_against_circuit(error) or error.status_code == 404


@dataclass
class Attempt:
    model: str
    provider: str
    error: str | None
    ms: float
    upstream_failed: bool = False  # counts against the model's circuit


@dataclass
class Invocation:
    """What serving a request took: the model that answered and every attempt on the way."""

    model: ModelConfig | None = None
    attempts: list[Attempt] = field(default_factory=list)


@dataclass
class StreamStart:
    """A stream that has produced its head and first content: now it may go to the client."""

    model: ModelConfig
    head: StreamHead
    prefix: list[StreamItem]
    rest: AsyncIterator[StreamItem]
    total_deadline: float


class Invoker:
    """Runs a route decision's fallback chain against an `Upstream`."""

    def __init__(
        self,
        upstream: Upstream,
        config: RoutingConfig,
        circuits: CircuitBoard,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.retry = RetryPolicy(config.retries)
        self.circuits = circuits
        self.clock = clock

    async def _chain(
        self,
        decision: RouteDecision,
        providers: Mapping[str, ProviderConfig],
        invocation: Invocation,
        call: Callable[[ProviderConfig, ModelConfig], Awaitable[T]],
    ) -> T:
        last: GatewayError | None = None
        for candidate in decision.candidates:
            model = candidate.model
            provider = providers[model.provider]
            breaker = self.circuits.get(model.provider, model.name)
            attempt = 0
            while True:
                now = self.clock()
                if not breaker.allow(now):
                    last = ServiceUnavailableError(
                        f"model '{model.name}' is failing upstream; its circuit is open",
                        retry_after=breaker.retry_after(now),
                        provider=model.provider,
                    )
                    break
                start = time.perf_counter()
                try:
                    result = await call(provider, model)
                except GatewayError as error:
                    ms = (time.perf_counter() - start) * 1000
                    failed = counts_against_circuit(error)
                    invocation.attempts.append(
                        Attempt(model.name, provider.name, error.code, ms, failed)
                    )
                    breaker.record(not failed, self.clock())
                    if not falls_back(error):
                        raise
                    last = error
                    attempt += 1
                    if self.retry.should_retry(error, attempt):
                        await asyncio.sleep(self.retry.delay(attempt, error.retry_after))
                        continue
                    break
                ms = (time.perf_counter() - start) * 1000
                invocation.attempts.append(Attempt(model.name, provider.name, None, ms))
                breaker.record(True, self.clock())
                invocation.model = model
                return result
        raise last or ServiceUnavailableError("no candidate model could be tried")

    async def complete(
        self,
        request: Any,
        decision: RouteDecision,
        providers: Mapping[str, ProviderConfig],
        invocation: Invocation,
        embeddings: bool = False,
    ) -> Completed:
        """A non-streaming call (chat or embeddings) through the fallback chain."""

        async def call(provider: ProviderConfig, model: ModelConfig) -> Completed:
            fn = self.upstream.embed if embeddings else self.upstream.complete
            try:
                async with asyncio.timeout(model.timeouts.total_s):
                    return await fn(provider, request, model)
            except TimeoutError:
                raise UpstreamTimeoutError(
                    f"model '{model.name}' did not answer within {model.timeouts.total_s:g} s",
                    provider=provider.name,
                ) from None

        return await self._chain(decision, providers, invocation, call)

    async def stream(
        self,
        request: Any,
        decision: RouteDecision,
        providers: Mapping[str, ProviderConfig],
        invocation: Invocation,
    ) -> StreamStart:
        """Open a stream through the fallback chain, up to its first content."""

        async def call(provider: ProviderConfig, model: ModelConfig) -> StreamStart:
            started = self.clock()
            items = self.upstream.stream(provider, request, model)
            prefix: list[StreamItem] = []
            try:
                async with asyncio.timeout(model.timeouts.first_token_s):
                    head = await anext(items)
                    if not isinstance(head, StreamHead):
                        raise UpstreamError("stream began without a head", provider=provider.name)
                    # Hold the role-only head until real content (or the end) arrives, so a
                    # failure in between can still fall back with nothing sent.
                    nxt = await anext(items, None)
                    if nxt is not None:
                        prefix.append(nxt)
            except TimeoutError:
                await _close(items)
                raise UpstreamTimeoutError(
                    f"model '{model.name}' sent no token within {model.timeouts.first_token_s:g} s",
                    provider=provider.name,
                ) from None
            except BaseException:
                await _close(items)
                raise
            return StreamStart(model, head, prefix, items, started + model.timeouts.total_s)

        return await self._chain(decision, providers, invocation, call)


async def _close(items: AsyncIterator[Any]) -> None:
    closer = getattr(items, "aclose", None)
    if closer is not None:
        with contextlib.suppress(Exception):
            await closer()
