"""A named model is served first, then its configured fallbacks; a forbidden one is not found."""

from __future__ import annotations

import pytest

from gateway.config import CircuitConfig, RoutingConfig
from gateway.errors import InvalidRequestError, ModelNotFoundError, ServiceUnavailableError
from gateway.registry.snapshot import RegistrySnapshot
from gateway.routing import CircuitBoard, RouteRequest, TenantPolicy, plan

from .conftest import FakeClock


def chain(snapshot: RegistrySnapshot, model: str, config: RoutingConfig | None = None, **fields):
    return plan(RouteRequest(model=model, **fields), snapshot, config or RoutingConfig()).names()


@pytest.mark.parametrize("name", ["gpt-mini", "mini", "openai/gpt-mini-2025"])
def test_a_model_is_found_by_name_alias_or_provider_upstream(
    snapshot: RegistrySnapshot, name: str
) -> None:
    decision = plan(RouteRequest(model=name), snapshot, RoutingConfig())
    assert decision.strategy == "named"
    assert decision.names() == ["gpt-mini"]
    assert decision.candidates[0].reason == "named model"


def test_provider_upstream_defaults_to_the_model_name(snapshot: RegistrySnapshot) -> None:
    assert chain(snapshot, "ollama/llama", fallback=False) == ["llama"]


def test_fallbacks_follow_in_configured_order(snapshot: RegistrySnapshot) -> None:
    decision = plan(RouteRequest(model="claude"), snapshot, RoutingConfig())
    assert decision.names() == ["claude", "gpt-big", "gpt-mini"]
    assert [c.reason for c in decision.candidates] == [
        "named model",
        "fallback #1 of claude",
        "fallback #2 of claude",
    ]


def test_fallbacks_can_be_switched_off_by_request_or_config(snapshot: RegistrySnapshot) -> None:
    assert chain(snapshot, "claude", fallback=False) == ["claude"]
    assert chain(snapshot, "claude", RoutingConfig(fallback=False)) == ["claude"]


def test_deprecated_and_testing_models_are_served_when_named(snapshot: RegistrySnapshot) -> None:
    assert chain(snapshot, "old-gpt") == ["old-gpt"]
    assert chain(snapshot, "sim-next") == ["sim-next"]


def test_a_testing_fallback_needs_a_policy_that_allows_testing(snapshot: RegistrySnapshot) -> None:
    decision = plan(RouteRequest(model="llama"), snapshot, RoutingConfig())
    assert decision.names() == ["llama"]
    assert decision.rejected == [
        ("sim-next", "in testing: this key's policy does not allow testing models")
    ]
    policy = TenantPolicy(allow_testing=True)
    assert chain(snapshot, "llama", policy=policy) == ["llama", "sim-next"]


def test_fallbacks_must_have_the_needed_capabilities(snapshot: RegistrySnapshot) -> None:
    decision = plan(
        RouteRequest(model="claude", needs=frozenset({"vision"})), snapshot, RoutingConfig()
    )
    assert decision.names() == ["claude", "gpt-big"]
    assert decision.rejected == [("gpt-mini", "does not support vision")]


def test_fallbacks_respect_the_policy_and_the_requests_hints(snapshot: RegistrySnapshot) -> None:
    policy = TenantPolicy(allowed_models=frozenset({"claude", "gpt-mini"}))
    assert chain(snapshot, "claude", policy=policy) == ["claude", "gpt-mini"]
    # Hints steer the gateway's own choices; the model the client named is served regardless.
    assert chain(snapshot, "claude", max_cost_per_mtok=1.0) == ["claude", "gpt-mini"]
    assert chain(snapshot, "claude", providers=frozenset({"openai"})) == [
        "claude",
        "gpt-big",
        "gpt-mini",
    ]
    assert chain(snapshot, "claude", providers=frozenset({"anthropic"})) == ["claude"]


@pytest.mark.parametrize(
    "policy",
    [
        TenantPolicy(allowed_models=frozenset({"gpt-mini"})),
        TenantPolicy(allowed_providers=frozenset({"openai"})),
        TenantPolicy(max_cost_per_mtok=1.0),
    ],
)
def test_a_model_the_policy_forbids_is_not_found(
    snapshot: RegistrySnapshot, policy: TenantPolicy
) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        plan(RouteRequest(model="claude", policy=policy), snapshot, RoutingConfig())
    unknown = pytest.raises(ModelNotFoundError)
    with unknown as missing:
        plan(RouteRequest(model="no-such-model"), snapshot, RoutingConfig())
    # Forbidden and missing look the same, bar the name: existence is not leaked.
    assert caught.value.body()["error"] == {
        "message": "The model 'claude' does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    assert caught.value.status_code == missing.value.status_code == 404
    assert missing.value.message == (
        "The model 'no-such-model' does not exist or you do not have access to it."
    )


@pytest.mark.parametrize(
    ("model", "need", "param"),
    [
        ("llama", "tools", "tools"),
        ("haiku", "vision", "messages"),
        ("claude", "json_mode", "response_format"),
        ("llama", "streaming", "stream"),
    ],
)
def test_a_named_model_without_a_needed_capability_is_a_400_naming_the_parameter(
    snapshot: RegistrySnapshot, model: str, need: str, param: str
) -> None:
    request = RouteRequest(model=model, needs=frozenset({"chat", need}))
    with pytest.raises(InvalidRequestError) as caught:
        plan(request, snapshot, RoutingConfig())
    assert caught.value.status_code == 400
    assert caught.value.param == param
    assert caught.value.message == f"The model '{model}' does not support {need}."


def trip(board: CircuitBoard, provider: str, model: str) -> None:
    breaker = board.get(provider, model)
    for _ in range(board.config.failure_threshold):
        breaker.record(False)


def test_an_open_circuit_skips_to_the_fallbacks_and_returns_after_open_s(
    snapshot: RegistrySnapshot, clock: FakeClock
) -> None:
    board = CircuitBoard(CircuitConfig(failure_threshold=2, open_s=10.0), clock)
    trip(board, "anthropic", "claude")
    decision = plan(RouteRequest(model="claude"), snapshot, RoutingConfig(), board)
    assert decision.names() == ["gpt-big", "gpt-mini"]
    assert decision.rejected[0][0] == "claude"
    assert decision.rejected[0][1].startswith("circuit open")
    clock.advance(10.0)  # half-open: the probe may go to claude again
    assert plan(RouteRequest(model="claude"), snapshot, RoutingConfig(), board).names()[0] == (
        "claude"
    )


def test_when_the_whole_chain_is_open_it_is_a_503_with_retry_after(
    snapshot: RegistrySnapshot, clock: FakeClock
) -> None:
    board = CircuitBoard(CircuitConfig(failure_threshold=1, open_s=30.0), clock)
    trip(board, "anthropic", "claude")
    clock.advance(5.0)
    for name in ("gpt-big", "gpt-mini"):
        trip(board, "openai", name)
    clock.advance(1.0)
    with pytest.raises(ServiceUnavailableError) as caught:
        plan(RouteRequest(model="claude"), snapshot, RoutingConfig(), board)
    error = caught.value
    assert error.status_code == 503
    assert error.retry_after == pytest.approx(24.0)  # claude half-opens first
    assert error.headers() == {"retry-after": "24"}
    assert "claude" in error.message
    with pytest.raises(ServiceUnavailableError):
        plan(RouteRequest(model="claude", fallback=False), snapshot, RoutingConfig(), board)


def test_a_provider_down_by_its_health_probe_is_named_as_such_not_as_an_open_circuit(
    snapshot: RegistrySnapshot, clock: FakeClock
) -> None:
    from gateway.registry.snapshot import ProviderHealth

    board = CircuitBoard(CircuitConfig(), clock)
    down = ProviderHealth("unhealthy", checked_at=0.0, latency_ms=3.0, error="connect refused")
    board.follow_health(snapshot.with_stats({}, 1, {"anthropic": down}))
    decision = plan(RouteRequest(model="claude"), snapshot, RoutingConfig(), board)
    assert decision.names() == ["gpt-big", "gpt-mini"]
    assert decision.rejected == [("claude", "provider 'anthropic' failed its last health probe")]
    with pytest.raises(ServiceUnavailableError) as caught:
        plan(RouteRequest(model="claude", fallback=False), snapshot, RoutingConfig(), board)
    assert "failed its last health probe" in caught.value.message
    assert "circuit open" not in caught.value.message
