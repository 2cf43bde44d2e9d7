"""One deadline bounds a whole request: every retry and fallback shares it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.config import ModelConfig, ProviderConfig, RoutingConfig
from gateway.errors import ServiceUnavailableError, UpstreamTimeoutError
from gateway.pipeline.invoker import DEADLINE, Invocation, Invoker
from gateway.pipeline.upstream import UpstreamCall
from gateway.providers.framing import Completed
from gateway.routing import CircuitBoard, RouteDecision
from gateway.routing.decision import Candidate

PROVIDER = ProviderConfig(name="p", type="sim")
PROVIDERS = {"p": PROVIDER}


class Hanging:
    """An upstream that never answers (until cancelled), or fails at once with a 503."""

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    async def send(self, call: UpstreamCall) -> Completed:
        self.calls += 1
        if self.fail:
            raise ServiceUnavailableError("down", provider="p")
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    def stream(self, call: UpstreamCall) -> AsyncIterator[Any]:
        async def items() -> AsyncIterator[Any]:
            self.calls += 1
            await asyncio.sleep(3600)
            yield None

        return items()


def decision(total_s: float, first_token_s: float = 30.0, n: int = 3) -> RouteDecision:
    models = [
        ModelConfig(
            name=f"m{i}",
            provider="p",
            timeouts={"total_s": total_s, "first_token_s": first_token_s},
        )
        for i in range(n)
    ]
    return RouteDecision("named", [Candidate(m, 0.0, "test") for m in models])


def invoker(upstream: Any, **routing: Any) -> Invoker:
    config = RoutingConfig(retries={"max_attempts": 3, "base_delay_s": 0.0}, **routing)
    return Invoker(upstream, config, CircuitBoard(config.circuit))


async def test_attempts_share_one_total_timeout_per_candidate() -> None:
    upstream = Hanging()
    invocation = Invocation()
    started = time.monotonic()
    with pytest.raises(UpstreamTimeoutError) as caught:
        await invoker(upstream).complete({}, decision(0.3), PROVIDERS, invocation)
    elapsed = time.monotonic() - started
    # 3 candidates x 3 attempts x 0.3 s each would be 2.7 s; the request's budget is one
    # total_s per candidate, 0.9 s, and each candidate (not only the first) got its turn.
    assert 0.85 < elapsed < 1.4
    assert {a.model for a in invocation.attempts} == {"m0", "m1", "m2"}
    assert caught.value.status_code == 504


async def test_a_timeout_is_the_models_own_unless_a_request_timeout_cut_it() -> None:
    with pytest.raises(UpstreamTimeoutError) as caught:
        await invoker(Hanging()).complete({}, decision(0.2, n=1), PROVIDERS, Invocation())
    assert caught.value.code == "upstream_timeout"
    with pytest.raises(UpstreamTimeoutError) as caught:
        await invoker(Hanging(), request_timeout_s=0.1).complete(
            {}, decision(60.0, n=1), PROVIDERS, Invocation()
        )
    assert caught.value.code == DEADLINE


async def test_request_timeout_setting_bounds_the_request() -> None:
    upstream = Hanging()
    started = time.monotonic()
    with pytest.raises(UpstreamTimeoutError):
        await invoker(upstream, request_timeout_s=0.2).complete(
            {}, decision(60.0), PROVIDERS, Invocation()
        )
    assert time.monotonic() - started < 0.6


async def test_streams_share_the_deadline_too() -> None:
    upstream = Hanging()
    started = time.monotonic()
    with pytest.raises(UpstreamTimeoutError) as caught:
        await invoker(upstream, request_timeout_s=0.2).stream(
            {}, decision(60.0, first_token_s=30.0), PROVIDERS, Invocation()
        )
    assert time.monotonic() - started < 0.6
    assert caught.value.code == DEADLINE


async def test_a_deadline_expiry_does_not_count_against_circuits() -> None:
    upstream = Hanging()
    inv = invoker(upstream, request_timeout_s=0.1)
    with pytest.raises(UpstreamTimeoutError):
        await inv.complete({}, decision(60.0, n=1), PROVIDERS, Invocation())
    assert all(state == "closed" for state in inv.circuits.states().values())


async def test_fast_failures_still_fall_back_within_the_deadline() -> None:
    upstream = Hanging(fail=True)
    invocation = Invocation()
    with pytest.raises(ServiceUnavailableError):
        await invoker(upstream).complete({}, decision(5.0), PROVIDERS, invocation)
    assert upstream.calls == 9 and len(invocation.attempts) == 9
