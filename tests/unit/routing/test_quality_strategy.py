"""The quality strategy: the cheapest model whose published quality's lower bound clears the
threshold (see conftest for the hand-made registry's prices)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import RoutingConfig
from gateway.errors import InvalidRequestError
from gateway.registry.snapshot import RegistrySnapshot
from gateway.routing import RouteDecision, RouteRequest, TenantPolicy, plan

from .conftest import MODELS, build


def _published(mean: float, low: float, high: float, n: int) -> dict[str, Any]:
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": n, "scorer": "rouge_l",
            "run_id": "run-1"}  # fmt: skip


# Cheapest first: llama $0, gpt-mini $0.26, claude $6, gpt-big $7.50 (summarization).
PUBLISHED = {
    "llama": _published(0.62, 0.55, 0.69, 200),
    # A lucky small sample: a high mean whose interval is wide.
    "gpt-mini": _published(0.90, 0.58, 0.99, 8),
    "claude": _published(0.81, 0.78, 0.84, 500),
    "gpt-big": _published(0.84, 0.81, 0.87, 500),
}


@pytest.fixture
def snapshot() -> RegistrySnapshot:
    models = [
        {**m, "published_quality": {"summarization": PUBLISHED[m["name"]]}}
        if m["name"] in PUBLISHED
        else m
        for m in MODELS
    ]
    return build(models)


def _plan(snapshot: RegistrySnapshot, **fields: Any) -> RouteDecision:
    request = RouteRequest(model="auto", use_case="summarization", **fields)
    return plan(request, snapshot, RoutingConfig(max_candidates=3), explain=True)


def test_the_cheapest_model_whose_lower_bound_clears_wins(snapshot: RegistrySnapshot) -> None:
    decision = _plan(snapshot, strategy="quality", min_quality=0.75)
    # gpt-mini's mean (0.90) is the best, but its lower bound (0.58) does not clear 0.75.
    assert decision.names() == ["claude", "gpt-big"]
    why = decision.candidates[0].reason
    assert "0.810 [0.780, 0.840], n=500, run run-1" in why and "clears 0.75" in why
    assert decision.candidates[0].score == pytest.approx(0.78)


def test_a_low_threshold_takes_the_cheapest_and_hybrid_honours_a_threshold(
    snapshot: RegistrySnapshot,
) -> None:
    assert _plan(snapshot, strategy="quality", min_quality=0.5).names()[0] == "llama"
    assert _plan(snapshot, strategy="hybrid", min_quality=0.8).names() == ["gpt-big"]


def test_the_config_threshold_applies_when_the_request_names_none(
    snapshot: RegistrySnapshot,
) -> None:
    request = RouteRequest(model="auto", use_case="summarization", strategy="quality")
    config = RoutingConfig(max_candidates=3, min_quality=0.8)
    assert plan(request, snapshot, config).names() == ["gpt-big"]


def test_no_model_clearing_the_threshold_is_a_400_naming_it(snapshot: RegistrySnapshot) -> None:
    with pytest.raises(InvalidRequestError, match=r"clears 0\.95") as caught:
        _plan(snapshot, strategy="quality", min_quality=0.95)
    assert caught.value.param == "route.min_quality"
    # A use case nothing was published for: no model clears any threshold above 0.
    with pytest.raises(InvalidRequestError, match="use case 'chat'"):
        plan(RouteRequest(model="auto", use_case="chat", strategy="quality", min_quality=0.1),
             snapshot, RoutingConfig())  # fmt: skip


def test_a_tenants_threshold_applies_and_the_requests_overrides_it(
    snapshot: RegistrySnapshot,
) -> None:
    policy = TenantPolicy(min_quality=0.8)
    # The default strategy (hybrid) with a tenant threshold routes by published quality.
    assert _plan(snapshot, policy=policy).names() == ["gpt-big"]
    assert _plan(snapshot, policy=policy, min_quality=0.75).names() == ["claude", "gpt-big"]


def test_the_tenant_spec_carries_its_threshold_into_routing() -> None:
    from gateway.tenancy.access import policy_of
    from gateway.tenancy.spec import TenantSpec

    assert policy_of(TenantSpec(name="team-a", min_quality=0.7)).min_quality == 0.7
    assert policy_of(TenantSpec(name="team-b")).min_quality is None
