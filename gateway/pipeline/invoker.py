"""Calling the candidates of a route decision: retries with backoff, fallback, circuit breakers,
and per-model timeouts inside one deadline for the whole request. A stream falls back only
before any of it reached the client.

The invoker owns the request's deadline: each attempt's `Budget` (what is left of it, cut to
the model's own timeouts) travels down with the call to the adapter, which runs inside it; the
invoker's own timer around each attempt also bounds a hop that never answers.
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
from gateway.pipeline.upstream import LATEST, Upstream, UpstreamCall
from gateway.providers.deadline import Budget
from gateway.providers.framing import Completed, StreamHead, StreamItem
from gateway.routing import CircuitBoard, RetryPolicy, RouteDecision

T = TypeVar("T")


# A call cancelled on its way (not by the upstream's doing): neither the model's fault nor
# something another candidate would fix.
CANCELLED = "upstream_cancelled"
# The request's own deadline passed: no candidate has time left.
DEADLINE = "request_timeout"


def counts_against_circuit(error: GatewayError) -> bool:
    """Upstream trouble opens a circuit; a client's own bad request does not, nor an answer
    that misses the client's own schema (its class sets `counts_against_circuit` False)."""
    if not error.counts_against_circuit:
        return False
    if error.code in (CANCELLED, DEADLINE):
        return False
    return error.status_code >= 500 or error.status_code in (408, 429)


def falls_back(error: GatewayError) -> bool:
    """Whether another candidate may succeed where this one failed."""
    if error.code in (CANCELLED, DEADLINE):
        return False
    return counts_against_circuit(error) or error.status_code == 404


@dataclass
class Attempt:
    model: str
    provider: str
    error: str | None
    ms: float
    upstream_failed: bool = False  # counts against the model's circuit
    started: float | None = None  # time.perf_counter() when it began (for its trace span)


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
        self.request_timeout_s = config.request_timeout_s
        self.circuits = circuits
        self.clock = clock

    def budget(self, decision: RouteDecision) -> float:
        """How long the whole request may take, every attempt included: `routing.
        request_timeout_s`, else one `timeouts.total_s` per candidate (a candidate's retries
        share its own; a fallback gets its own, so a model that times out leaves its fallbacks
        room to answer)."""
        if self.request_timeout_s is not None:
            return self.request_timeout_s
        return sum(c.model.timeouts.total_s for c in decision.candidates)

    def deadline(self, decision: RouteDecision) -> float:
        """When the whole request must be done, from now."""
        return self.clock() + self.budget(decision)

    def _cut_short(self, end: float, deadline: float, started: float, model_limit: float) -> bool:
        """Whether the request's `request_timeout_s`, not the model's own limit, ended an
        attempt that had until `end` (its candidate's share, or the request's deadline)."""
        return (
            self.request_timeout_s is not None
            and end >= deadline
            and deadline < started + model_limit
        )

    async def _chain(
        self,
        decision: RouteDecision,
        providers: Mapping[str, ProviderConfig],
        invocation: Invocation,
        call: Callable[[ProviderConfig, ModelConfig, float, float], Awaitable[T]],
    ) -> T:
        """`call(provider, model, end, deadline)` for each candidate in turn: an attempt has
        until `end`, its candidate's own `total_s` (which retries share) within the request's
        one `deadline`."""
        deadline = self.deadline(decision)
        last: GatewayError | None = None
        for candidate in decision.candidates:
            model = candidate.model
            provider = providers[model.provider]
            breaker = self.circuits.get(model.provider, model.name)
            attempt = 0
            # A candidate's attempts share its own total_s, within the request's deadline.
            own = min(deadline, self.clock() + model.timeouts.total_s)
            while True:
                now = self.clock()
                if now >= deadline:
                    raise self._expired(decision, last)
                if now >= own:
                    break
                permit = breaker.acquire(now)
                if permit is None:
                    last = ServiceUnavailableError(
                        f"model '{model.name}' is failing upstream; its circuit is open",
                        retry_after=breaker.retry_after(now),
                        provider=model.provider,
                    )
                    break
                start = time.perf_counter()
                try:
                    result = await call(provider, model, own, deadline)
                except GatewayError as error:
                    ms = (time.perf_counter() - start) * 1000
                    failed = counts_against_circuit(error)
                    invocation.attempts.append(
                        Attempt(model.name, provider.name, error.code, ms, failed, start)
                    )
                    breaker.record(not failed, self.clock(), permit)
                    if not falls_back(error):
                        raise
                    last = error
                    attempt += 1
                    if self.retry.should_retry(error, attempt):
                        wait = self.retry.delay(attempt, error.retry_after)
                        if self.clock() + wait >= deadline:
                            raise self._expired(decision, last) from None
                        if self.clock() + wait < own:
                            await asyncio.sleep(wait)
                            continue
                    break
                ms = (time.perf_counter() - start) * 1000
                invocation.attempts.append(
                    Attempt(model.name, provider.name, None, ms, started=start)
                )
                breaker.record(True, self.clock(), permit)
                invocation.model = model
                return result
        raise last or ServiceUnavailableError("no candidate model could be tried")

    def _expired(self, decision: RouteDecision, last: GatewayError | None) -> GatewayError:
        """The error for a spent budget: with no `request_timeout_s` the budget is the models'
        own timeouts, so the last model's error says best what happened."""
        if self.request_timeout_s is None and last is not None:
            return last
        budget = self.budget(decision)
        why = f" (last error: {last.message})" if last is not None else ""
        return UpstreamTimeoutError(
            f"the request did not finish within its deadline of {budget:g} s, "
            f"retries and fallbacks included{why}",
            code=DEADLINE,
        )

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
        """A non-streaming call (chat or embeddings) through the fallback chain.

        `version` is the registry version the decision was planned on (a pool looks the
        configs up by it); `body`, the client's bytes when they are `request` as validated."""
        kind = "embed" if embeddings else "complete"

        async def call(
            provider: ProviderConfig, model: ModelConfig, end: float, deadline: float
        ) -> Completed:
            started = self.clock()
            limit = min(model.timeouts.total_s, end - started)
            budget = Budget.within(model.timeouts, limit)
            envelope = UpstreamCall.planned(kind, provider, model, request, version, body, budget)
            try:
                async with asyncio.timeout(limit):
                    return await self.upstream.send(envelope)
            except TimeoutError:
                if self._cut_short(end, deadline, started, model.timeouts.total_s):
                    raise self._expired(decision, None) from None
                raise UpstreamTimeoutError(
                    f"model '{model.name}' did not answer within {limit:g} s",
                    provider=provider.name,
                ) from None

        return await self._chain(decision, providers, invocation, call)

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
        """Open a stream through the fallback chain, up to its first content."""

        async def call(
            provider: ProviderConfig, model: ModelConfig, end: float, deadline: float
        ) -> StreamStart:
            started = self.clock()
            total_deadline = min(started + model.timeouts.total_s, end)
            budget = Budget.within(model.timeouts, total_deadline - started)
            first_token_s = budget.first_token_s  # the invoker's timer and the adapter's agree
            envelope = UpstreamCall.planned(
                "stream", provider, model, request, version, body, budget
            )
            items = self.upstream.stream(envelope)
            prefix: list[StreamItem] = []
            try:
                async with asyncio.timeout(first_token_s):
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
                if self._cut_short(end, deadline, started, model.timeouts.first_token_s):
                    raise self._expired(decision, None) from None
                raise UpstreamTimeoutError(
                    f"model '{model.name}' sent no token within {first_token_s:g} s",
                    provider=provider.name,
                ) from None
            except BaseException:
                await _close(items)
                raise
            return StreamStart(model, head, prefix, items, total_deadline)

        return await self._chain(decision, providers, invocation, call)


async def _close(items: AsyncIterator[Any]) -> None:
    closer = getattr(items, "aclose", None)
    if closer is not None:
        with contextlib.suppress(Exception):
            await closer()
