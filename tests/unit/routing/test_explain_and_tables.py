"""`route explain` accounts for every model; precomputed tables never serve a stale registry."""

from __future__ import annotations

from gateway.config import RoutingConfig
from gateway.registry.snapshot import ModelStats, RegistrySnapshot
from gateway.routing import RouteRequest, plan

from .conftest import MODELS, build


def test_explain_gives_the_same_candidates_and_a_reason_for_every_other_model(
    snapshot: RegistrySnapshot,
) -> None:
    request = RouteRequest(model="auto", strategy="capability", needs=frozenset({"tools"}))
    config = RoutingConfig(max_candidates=2)
    plain = plan(request, snapshot, config)
    explained = plan(request, snapshot, config, explain=True)
    assert explained.names() == plain.names() == ["gpt-big", "claude"]
    assert plain.rejected == []
    assert dict(explained.rejected) == {
        "gpt-mini": "eligible, ranked below the top 2 by capability",
        "haiku": "eligible, ranked below the top 2 by capability",
        "llama": "does not support tools",
        "sim-next": "in testing: this key's policy does not allow testing models",
        "old-gpt": "deprecated: served only when named",
    }
    assert len(explained.rejected) == len(snapshot.models) - 2


def test_explain_names_the_use_case_and_numeric_limits(snapshot: RegistrySnapshot) -> None:
    request = RouteRequest(
        model="auto",
        use_case="summarization",
        prompt_tokens=100_000,
        max_cost_per_mtok=7.0,
        max_latency_ms=500.0,
    )
    decision = plan(request, snapshot, RoutingConfig(), explain=True)
    assert decision.names() == ["gpt-mini"]
    assert dict(decision.rejected) == {
        "gpt-big": "blended price $7.50/Mtok over the cap $7.00",
        "claude": "p50 1200 ms over the cap 500 ms",
        "llama": "context window 8192 tokens < 100000 needed",
        "haiku": "does not serve use case 'summarization'",
        "sim-next": "does not serve use case 'summarization'",
        "old-gpt": "does not serve use case 'summarization'",
    }


def test_two_registries_at_the_same_version_each_route_on_their_own_models() -> None:
    cheap_first = build()
    only_claude = build([m for m in MODELS if m["name"] == "claude"])
    assert cheap_first.version == only_claude.version
    request = RouteRequest(model="auto", strategy="cost")
    for _ in range(2):
        assert plan(request, cheap_first, RoutingConfig()).names()[0] == "llama"
        assert plan(request, only_claude, RoutingConfig()).names() == ["claude"]


def test_fresher_statistics_change_latency_ranking(snapshot: RegistrySnapshot) -> None:
    request = RouteRequest(model="auto", strategy="latency")
    config = RoutingConfig()
    assert plan(request, snapshot, config).names()[0] == "haiku"
    slower = {**snapshot.stats, "haiku": ModelStats(requests=100, latency_p50_ms=5000.0)}
    fresher = snapshot.with_stats(slower, snapshot.stats_version + 1)
    assert plan(request, fresher, config).names()[0] == "gpt-mini"


def test_a_changed_routing_config_takes_effect(snapshot: RegistrySnapshot) -> None:
    request = RouteRequest(model="auto", strategy="preference")
    assert plan(request, snapshot, RoutingConfig()).names()[0] == "gpt-big"
    preferring = RoutingConfig(provider_preference=["ollama"])
    assert plan(request, snapshot, preferring).names()[0] == "llama"
