"""`auto` only ever picks models that can serve the request and that the tenant may use."""

from __future__ import annotations

from gateway.config import RoutingConfig
from gateway.registry.snapshot import RegistrySnapshot
from gateway.routing import RouteRequest, TenantPolicy, plan

EVERY = RoutingConfig(max_candidates=10)


def pick(snapshot: RegistrySnapshot, config: RoutingConfig = EVERY, **fields: object) -> list[str]:
    """The chosen models, best quality first, so each test reads as 'which ones passed'."""
    fields.setdefault("strategy", "capability")
    return plan(RouteRequest(model="auto", **fields), snapshot, config).names()  # type: ignore[arg-type]


def test_use_case_defaults_to_chat_and_selects_models_that_serve_it(
    snapshot: RegistrySnapshot,
) -> None:
    assert pick(snapshot) == ["gpt-big", "claude", "gpt-mini", "haiku", "llama"]
    assert pick(snapshot, use_case="classification") == ["gpt-mini", "haiku"]
    assert pick(snapshot, use_case="research") == ["gpt-big", "claude"]


def test_every_needed_capability_is_required(snapshot: RegistrySnapshot) -> None:
    assert pick(snapshot, needs=frozenset({"chat", "vision"})) == ["gpt-big", "claude"]
    assert pick(snapshot, needs=frozenset({"tools", "json_mode"})) == ["gpt-big", "gpt-mini"]
    assert "llama" not in pick(snapshot, needs=frozenset({"chat", "streaming"}))


def test_context_window_must_hold_prompt_plus_output(snapshot: RegistrySnapshot) -> None:
    assert pick(snapshot, prompt_tokens=100_000) == ["gpt-big", "claude", "gpt-mini", "haiku"]
    assert pick(snapshot, prompt_tokens=125_000, max_output_tokens=4000) == ["claude", "haiku"]
    # Exactly full still fits.
    assert pick(snapshot, prompt_tokens=8000, max_output_tokens=192)[-1] == "llama"
    assert "llama" not in pick(snapshot, prompt_tokens=8000, max_output_tokens=193)


def test_max_cost_is_on_the_blended_price_from_request_or_policy(
    snapshot: RegistrySnapshot,
) -> None:
    # haiku's blended price is exactly $1.60/Mtok: at the cap is within it.
    assert pick(snapshot, max_cost_per_mtok=1.6) == ["gpt-mini", "haiku", "llama"]
    policy = TenantPolicy(max_cost_per_mtok=1.0)
    assert pick(snapshot, max_cost_per_mtok=10.0, policy=policy) == ["gpt-mini", "llama"]


def test_max_latency_uses_measured_p50_and_lets_unmeasured_models_through(
    snapshot: RegistrySnapshot,
) -> None:
    assert pick(snapshot, max_latency_ms=300.0) == ["gpt-mini", "haiku", "llama"]


def test_providers_are_the_requests_within_the_policys(snapshot: RegistrySnapshot) -> None:
    assert pick(snapshot, providers=frozenset({"anthropic", "ollama"})) == [
        "claude",
        "haiku",
        "llama",
    ]
    policy = TenantPolicy(allowed_providers=frozenset({"openai", "anthropic"}))
    assert pick(snapshot, policy=policy) == ["gpt-big", "claude", "gpt-mini", "haiku"]
    assert pick(snapshot, providers=frozenset({"anthropic", "ollama"}), policy=policy) == [
        "claude",
        "haiku",
    ]


def test_policy_allowed_models(snapshot: RegistrySnapshot) -> None:
    policy = TenantPolicy(allowed_models=frozenset({"haiku", "llama", "sim-next"}))
    assert pick(snapshot, policy=policy) == ["haiku", "llama"]


def test_testing_models_only_for_tenants_that_allow_them(snapshot: RegistrySnapshot) -> None:
    assert "sim-next" not in pick(snapshot)
    assert pick(snapshot, policy=TenantPolicy(allow_testing=True))[0] == "sim-next"


def test_deprecated_models_are_never_chosen_automatically(snapshot: RegistrySnapshot) -> None:
    policy = TenantPolicy(allow_testing=True)
    for strategy in ("capability", "cost", "latency", "preference", "tenant", "hybrid"):
        assert "old-gpt" not in pick(snapshot, strategy=strategy, policy=policy)
    assert "old-gpt" not in pick(snapshot, prefer=("old-gpt", "openai"), strategy="preference")


def test_candidate_count_follows_max_candidates_and_fallback_switches(
    snapshot: RegistrySnapshot,
) -> None:
    assert len(pick(snapshot, RoutingConfig(max_candidates=2))) == 2
    assert pick(snapshot, RoutingConfig(), fallback=False) == ["gpt-big"]
    assert pick(snapshot, RoutingConfig(fallback=False)) == ["gpt-big"]


def test_filters_apply_to_every_strategy_and_to_preferences(snapshot: RegistrySnapshot) -> None:
    needs = frozenset({"vision"})
    for strategy in ("capability", "cost", "latency", "preference", "tenant", "hybrid"):
        chosen = pick(snapshot, strategy=strategy, needs=needs, prefer=("ollama", "haiku"))
        assert sorted(chosen) == ["claude", "gpt-big"], strategy
    policy = TenantPolicy(preferred_models=("llama",), preferred_providers=("ollama",))
    assert sorted(pick(snapshot, strategy="tenant", needs=needs, policy=policy)) == [
        "claude",
        "gpt-big",
    ]
