"""One envelope for a call to a model: lean across a hop, resolved by registry version."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import AsyncIterator

import pytest

from deployments.registry_versions import RegistryVersions
from gateway.config import ModelConfig, ProviderConfig, RoutingConfig, Timeouts
from gateway.errors import InvalidRequestError, ServiceUnavailableError
from gateway.pipeline.invoker import Invocation, Invoker
from gateway.pipeline.upstream import LATEST, LocalUpstream, UpstreamCall
from gateway.providers.deadline import Budget
from gateway.providers.framing import Completed, StreamItem
from gateway.registry.snapshot import RegistrySnapshot
from gateway.routing import CircuitBoard, RouteRequest, plan
from gateway.wire import ChatCompletionRequest, EmbeddingRequest

PROVIDER = ProviderConfig(name="p", type="sim")
MODEL = ModelConfig(name="m", provider="p")
CHAT = ChatCompletionRequest.model_validate(
    {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "temperature": 0.5,
        "route": {"strategy": "cost"},
    }
)


def snapshot(version: int, model: ModelConfig = MODEL) -> RegistrySnapshot:
    return RegistrySnapshot(version, {"p": PROVIDER}, {model.name: model})


def test_across_a_hop_only_names_version_and_bytes_travel() -> None:
    call = UpstreamCall.planned("complete", PROVIDER, MODEL, CHAT, version=7)
    crossed = pickle.loads(pickle.dumps(call))
    assert (crossed.kind, crossed.provider, crossed.model, crossed.version) == (
        "complete",
        "p",
        "m",
        7,
    )
    assert crossed.request is None and crossed.provider_config is None
    assert crossed.model_config is None
    assert crossed.parsed() == CHAT  # the same request, parsed once on the far side


def test_the_clients_own_bytes_cross_as_they_are() -> None:
    raw = b'{"model":"m","input":"hello"}'
    request = EmbeddingRequest.model_validate_json(raw)
    call = UpstreamCall.planned("embed", PROVIDER, MODEL, request, body=raw)
    crossed = pickle.loads(pickle.dumps(call))
    assert crossed.body == raw
    assert crossed.parsed() == request


def test_bytes_our_parser_refuses_are_a_400() -> None:
    call = UpstreamCall("complete", "p", "m", 1, b'{"model":"m","messages":[]}')
    with pytest.raises(InvalidRequestError):
        call.parsed()


class Registry:
    """A registry whose current snapshot a test moves; counts fetches."""

    def __init__(self, *versions: RegistrySnapshot, error: Exception | None = None) -> None:
        self.answers = list(versions)
        self.fetches = 0
        self.error = error

    async def fetch(self) -> RegistrySnapshot:
        self.fetches += 1
        await asyncio.sleep(0.01)
        if self.error is not None:
            raise self.error
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def lean(version: int, model: str = "m") -> UpstreamCall:
    return UpstreamCall("complete", "p", model, version, b"{}")


async def test_a_new_version_is_fetched_once_for_all_waiting_calls() -> None:
    registry = Registry(snapshot(3))
    versions = RegistryVersions(registry.fetch)
    calls = [lean(3) for _ in range(20)]
    await asyncio.gather(*(versions.resolve(c) for c in calls))
    assert registry.fetches == 1
    assert all(c.model_config == MODEL and c.provider_config == PROVIDER for c in calls)
    await versions.resolve(lean(3))
    await versions.resolve(lean(LATEST))
    assert registry.fetches == 1  # held: no more fetches


async def test_a_version_not_published_yet_is_waited_for() -> None:
    newer = ModelConfig(name="m", provider="p", quality=0.9)
    registry = Registry(snapshot(4), snapshot(4), snapshot(5, newer))
    versions = RegistryVersions(registry.fetch, wait_s=2.0)
    call = lean(5)
    await versions.resolve(call)
    assert call.model_config == newer and registry.fetches == 3


async def test_a_lagging_caller_is_served_by_the_newest_version_without_fetching() -> None:
    registry = Registry(snapshot(9))
    versions = RegistryVersions(registry.fetch)
    await versions.resolve(lean(9))
    call = lean(8)
    await versions.resolve(call)
    assert call.model_config == MODEL and registry.fetches == 1


async def test_an_unreachable_registry_is_a_503_after_the_wait() -> None:
    versions = RegistryVersions(Registry(error=ConnectionError("gone")).fetch, wait_s=0.2)
    with pytest.raises(ServiceUnavailableError) as caught:
        await versions.resolve(lean(1))
    assert caught.value.code == "registry_version_unknown"


async def test_a_model_missing_from_its_version_is_a_503_naming_it() -> None:
    versions = RegistryVersions(Registry(snapshot(2)).fetch)
    with pytest.raises(ServiceUnavailableError) as caught:
        await versions.resolve(lean(2, model="gone"))
    assert "'gone'" in caught.value.message and caught.value.code == "registry_version_mismatch"


async def test_only_the_newest_versions_are_kept() -> None:
    registry = Registry(*(snapshot(v) for v in range(1, 8)))
    versions = RegistryVersions(registry.fetch, keep=3)
    for version in range(1, 8):
        await versions.resolve(lean(version))
    assert sorted(versions._held) == [5, 6, 7]


async def test_a_call_naming_no_version_sees_changes_without_waiting_for_them() -> None:
    changed = ModelConfig(name="m", provider="p", upstream="m-2")
    registry = Registry(snapshot(1), snapshot(2, changed))
    versions = RegistryVersions(registry.fetch, fresh_s=0.05)
    first = lean(LATEST)
    await versions.resolve(first)
    await asyncio.sleep(0.06)
    stale = lean(LATEST)
    await versions.resolve(stale)  # answered from what is held; a refresh starts behind it
    assert stale.model_config == MODEL
    await asyncio.sleep(0.05)
    fresh = lean(LATEST)
    await versions.resolve(fresh)
    assert fresh.model_config == changed and registry.fetches == 2


def test_the_invokers_budget_crosses_a_hop_with_the_call() -> None:
    budget = Budget(total_s=2.5, first_token_s=1.0, connect_s=0.5)
    call = UpstreamCall.planned("stream", PROVIDER, MODEL, CHAT, version=3, budget=budget)
    assert pickle.loads(pickle.dumps(call)).budget == budget


def test_a_budget_is_the_models_timeouts_cut_to_what_the_request_has_left() -> None:
    timeouts = Timeouts(connect_s=2, first_token_s=10, total_s=60)
    assert Budget.within(timeouts, 5) == Budget(total_s=5, first_token_s=5, connect_s=2)
    assert Budget.within(timeouts, 30) == Budget(total_s=30, first_token_s=10, connect_s=2)
    assert Budget.within(timeouts, -1).total_s == 0  # spent: the call is never started


class Recording:
    """An `Upstream` that keeps the calls it is given and answers from the sim."""

    def __init__(self) -> None:
        self.calls: list[UpstreamCall] = []
        self.local = LocalUpstream()

    async def send(self, call: UpstreamCall) -> Completed:
        self.calls.append(call)
        return await self.local.send(call)

    def stream(self, call: UpstreamCall) -> AsyncIterator[StreamItem]:
        self.calls.append(call)
        return self.local.stream(call)


@pytest.mark.parametrize("request_timeout_s", [None, 3.0])
async def test_the_invoker_owns_the_deadline_and_passes_it_down(
    request_timeout_s: float | None,
) -> None:
    """Each attempt's budget is the request's deadline as the invoker keeps it: the model's
    own timeouts, cut to `routing.request_timeout_s` when that is shorter."""
    model = MODEL.model_copy(update={"timeouts": Timeouts(first_token_s=10, total_s=60)})
    routing = RoutingConfig(request_timeout_s=request_timeout_s)
    upstream = Recording()
    invoker = Invoker(upstream, routing, CircuitBoard(routing.circuit))
    decision = plan(RouteRequest(model="m"), snapshot(1, model), routing, invoker.circuits)
    await invoker.complete(CHAT, decision, {"p": PROVIDER}, Invocation())
    await invoker.stream(CHAT, decision, {"p": PROVIDER}, Invocation())
    for call in upstream.calls:
        assert call.budget is not None
        limit = request_timeout_s or 60
        assert limit - 1 < call.budget.total_s <= limit
        assert call.budget.first_token_s == min(10, call.budget.total_s)
