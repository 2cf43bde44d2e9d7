"""Each strategy orders the hand-made registry (see conftest) the way its name promises."""

from __future__ import annotations

import pytest

from gateway.config import RoutingConfig, Weights
from gateway.registry.snapshot import ModelStats, RegistrySnapshot
from gateway.routing import RouteRequest, TenantPolicy, plan

from .conftest import LATENCY_MS, build

EVERY = RoutingConfig(max_candidates=10)


def order(snapshot: RegistrySnapshot, config: RoutingConfig = EVERY, **fields: object) -> list[str]:
    return plan(RouteRequest(model="auto", **fields), snapshot, config).names()  # type: ignore[arg-type]


def only(**weights: float) -> RoutingConfig:
    zero = {"quality": 0.0, "cost": 0.0, "latency": 0.0, "preference": 0.0, "errors": 0.0}
    return RoutingConfig(max_candidates=10, weights=Weights(**{**zero, **weights}))


def test_capability_puts_the_highest_quality_first(snapshot: RegistrySnapshot) -> None:
    assert order(snapshot, strategy="capability") == [
        "gpt-big",
        "claude",
        "gpt-mini",
        "haiku",
        "llama",
    ]


def test_cost_puts_the_cheapest_blended_price_first(snapshot: RegistrySnapshot) -> None:
    assert order(snapshot, strategy="cost") == ["llama", "gpt-mini", "haiku", "claude", "gpt-big"]


def test_latency_puts_the_fastest_measured_first_and_unmeasured_last_by_quality() -> None:
    stats = {n: ModelStats(requests=50, latency_p50_ms=ms) for n, ms in LATENCY_MS.items()}
    del stats["gpt-big"]  # now unmeasured, like llama: both go last, better quality first
    snapshot = build(stats=stats)
    assert order(snapshot, strategy="latency") == [
        "haiku",
        "gpt-mini",
        "claude",
        "gpt-big",
        "llama",
    ]


def test_default_max_candidates_is_three_and_scores_are_the_ranked_figure(
    snapshot: RegistrySnapshot, config: RoutingConfig
) -> None:
    decision = plan(RouteRequest(model="auto", strategy="cost"), snapshot, config)
    assert decision.strategy == "cost"
    assert decision.names() == ["llama", "gpt-mini", "haiku"]
    assert [c.score for c in decision.candidates] == pytest.approx([0.0, 0.2625, 1.6])
    assert decision.candidates[1].reason == "by cost: quality 0.70, cost $0.26/Mtok, p50 300 ms"


def test_preference_follows_request_then_tenant_then_config_then_quality(
    snapshot: RegistrySnapshot,
) -> None:
    config = RoutingConfig(max_candidates=10, provider_preference=["ollama"])
    assert order(snapshot, config, strategy="preference", prefer=("anthropic",)) == [
        "claude",
        "haiku",
        "llama",
        "gpt-big",
        "gpt-mini",
    ]
    policy = TenantPolicy(preferred_providers=("anthropic",))
    assert order(snapshot, config, strategy="preference", prefer=("mini",), policy=policy) == [
        "gpt-mini",
        "claude",
        "haiku",
        "llama",
        "gpt-big",
    ]


def test_preference_reasons_say_who_preferred(snapshot: RegistrySnapshot) -> None:
    config = RoutingConfig(provider_preference=["ollama"])
    policy = TenantPolicy(preferred_providers=("anthropic",))
    decision = plan(
        RouteRequest(model="auto", strategy="preference", prefer=("gpt-mini",), policy=policy),
        snapshot,
        config,
    )
    assert [c.reason.split(":")[0] for c in decision.candidates] == [
        "preferred by the request ('gpt-mini')",
        "preferred by the tenant ('anthropic')",
        "preferred by the tenant ('anthropic')",
    ]


def test_tenant_puts_policy_models_then_policy_providers_then_hybrid(
    snapshot: RegistrySnapshot,
) -> None:
    policy = TenantPolicy(preferred_models=("haiku",), preferred_providers=("openai",))
    # With quality as the only weight, the hybrid order is the quality order.
    assert order(snapshot, only(quality=1.0), strategy="tenant", policy=policy) == [
        "haiku",
        "gpt-big",
        "gpt-mini",
        "claude",
        "llama",
    ]


def test_policy_default_strategy_applies_when_the_request_names_none(
    snapshot: RegistrySnapshot,
) -> None:
    policy = TenantPolicy(default_strategy="cost")
    assert order(snapshot, policy=policy)[0] == "llama"
    assert order(snapshot, policy=policy, strategy="capability")[0] == "gpt-big"


def test_hybrid_with_one_weight_reduces_to_that_strategy(snapshot: RegistrySnapshot) -> None:
    assert order(snapshot, only(quality=1.0)) == order(snapshot, strategy="capability")
    assert order(snapshot, only(cost=1.0)) == order(snapshot, strategy="cost")
    # Latency only: the unmeasured llama sits mid-way between fastest and slowest.
    assert order(snapshot, only(latency=1.0)) == ["haiku", "gpt-mini", "llama", "gpt-big", "claude"]


def test_hybrid_default_weights_balance_quality_cost_and_latency(
    snapshot: RegistrySnapshot, config: RoutingConfig
) -> None:
    decision = plan(RouteRequest(model="auto"), snapshot, config)
    assert decision.strategy == "hybrid"
    # gpt-mini: quality .70, cost .50 of the log-price range, latency .10 of the p50 range.
    assert decision.names() == ["gpt-mini", "llama", "haiku"]
    assert decision.candidates[0].score == pytest.approx(0.1009, abs=1e-3)
    assert decision.candidates[0].reason.startswith("hybrid score 0.10: quality 0.70")


def test_hybrid_preference_from_the_request_lifts_a_provider(snapshot: RegistrySnapshot) -> None:
    assert order(snapshot, prefer=("anthropic",))[:3] == ["haiku", "gpt-mini", "llama"]
    assert order(snapshot, only(preference=1.0, quality=0.01), prefer=("llama", "anthropic")) == [
        "llama",
        "claude",
        "haiku",
        "gpt-big",
        "gpt-mini",
    ]


def test_hybrid_config_provider_preference_earns_a_bonus(snapshot: RegistrySnapshot) -> None:
    config = RoutingConfig(
        max_candidates=10,
        provider_preference=["ollama"],
        weights=Weights(quality=1.0, cost=0.0, latency=0.0, preference=1.0, errors=0.0),
    )
    assert order(snapshot, config)[0] == "llama"


def test_hybrid_penalises_a_model_that_keeps_failing() -> None:
    stats = {n: ModelStats(requests=100, latency_p50_ms=ms) for n, ms in LATENCY_MS.items()}
    stats["gpt-mini"] = ModelStats(requests=100, errors=50, latency_p50_ms=300.0)
    assert order(build(stats=stats))[:3] == ["llama", "haiku", "gpt-mini"]


def test_ties_are_broken_by_name() -> None:
    twin = {"provider": "p", "quality": 0.5, "price": {"input_per_mtok": 1.0}}
    snapshot = build([{**twin, "name": n} for n in ("b", "c", "a")], stats={})
    for strategy in ("capability", "cost", "latency", "preference", "tenant", "hybrid"):
        assert order(snapshot, strategy=strategy) == ["a", "b", "c"], strategy
