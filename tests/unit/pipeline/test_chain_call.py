"""`placement: router` without Ray: the Router replica's class run in-process over the sim
provider, fed what crosses the ingress -> Router hop (a pickled `ChainCall`)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from deployments.placement_router import ChainCall, Router, StreamOpened
from gateway.config import GatewayConfig
from gateway.errors import ServiceUnavailableError
from gateway.providers.framing import StreamHead
from gateway.registry.snapshot import RegistrySnapshot
from gateway.routing import RouteDecision
from gateway.routing.decision import Candidate
from gateway.wire import ChatCompletionRequest

CONFIG = GatewayConfig.model_validate(
    {
        "providers": [
            {"name": "sim", "type": "sim", "sim": {"output_tokens": 4}},
            {"name": "flaky", "type": "sim", "sim": {"failure_rate": 1.0}},
        ],
        "models": [
            {"name": "sim-fast", "provider": "sim"},
            {"name": "sim-dead", "provider": "flaky"},
        ],
        "routing": {"retries": {"max_attempts": 2, "base_delay_s": 0.0}},
        "server": {"inline_providers": ["sim"]},
    }
)
SNAPSHOT = RegistrySnapshot(
    3, {p.name: p for p in CONFIG.providers}, {m.name: m for m in CONFIG.models}
)
CHAT = ChatCompletionRequest.model_validate(
    {"model": "sim-dead", "messages": [{"role": "user", "content": "hi"}]}
)


async def fetch() -> RegistrySnapshot:
    return SNAPSHOT


def router() -> Any:
    return Router.func_or_class(CONFIG, {}, fetch)


def crossed(*names: str, version: int = 3) -> ChainCall:
    """A chain call as the Router receives it: pickled, with the ingress's decision."""
    decision = RouteDecision("named", [Candidate(SNAPSHOT.models[n], 0.0, "t") for n in names])
    return pickle.loads(pickle.dumps(ChainCall.of("complete", CHAT, decision, version, None)))


async def test_the_chain_runs_on_the_routers_view_of_the_planned_version() -> None:
    outcome = await router().complete(crossed("sim-dead", "sim-fast"))
    assert outcome.error is None and outcome.result is not None
    assert outcome.invocation.model.name == "sim-fast"
    attempts = [(a.model, a.error is None) for a in outcome.invocation.attempts]
    assert attempts == [("sim-dead", False), ("sim-dead", False), ("sim-fast", True)]


async def test_a_failed_chain_comes_back_with_every_attempt() -> None:
    outcome = await router().complete(crossed("sim-dead"))
    assert isinstance(outcome.error, ServiceUnavailableError)
    assert [a.model for a in outcome.invocation.attempts] == ["sim-dead", "sim-dead"]


async def test_a_failed_stream_chain_opens_with_its_attempts_and_ends() -> None:
    call = crossed("sim-dead")
    call.kind = "stream"
    items = [item async for item in router().stream(call)]
    assert len(items) == 1 and isinstance(items[0], StreamOpened)
    assert items[0].error is not None and len(items[0].invocation.attempts) == 2


async def test_a_stream_opens_then_head_then_frames() -> None:
    call = crossed("sim-fast")
    call.kind = "stream"
    items = [item async for item in router().stream(call)]
    assert isinstance(items[0], StreamOpened) and items[0].error is None
    assert isinstance(items[1], StreamHead)
    assert all(isinstance(item, bytes) for item in items[2:-1])


async def test_a_candidate_missing_from_the_version_is_a_clean_failure() -> None:
    call = crossed("sim-fast")
    call.candidates = [("no-such-model", 0.0, "t")]
    outcome = await router().complete(call)
    assert outcome.error is not None and outcome.error.code == "registry_version_mismatch"
    assert "'no-such-model'" in outcome.error.message


def test_only_plain_values_cross_the_hop() -> None:
    call = crossed("sim-dead", "sim-fast")
    assert call.candidates == [("sim-dead", 0.0, "t"), ("sim-fast", 0.0, "t")]
    assert ChatCompletionRequest.model_validate_json(call.body) == CHAT
    with pytest.raises(AttributeError):
        call.request  # noqa: B018  (no parsed object travels)
