"""One owner for "can this model serve this request": the request's needs are computed once,
and a provider type's refusals keep `auto` away from it and refuse a named model before any
hop, with the 400 its adapter would give."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import ModelConfig, ProviderConfig, RoutingConfig
from gateway.errors import InvalidRequestError
from gateway.providers.support import SUPPORT, needs_of
from gateway.registry.snapshot import RegistrySnapshot
from gateway.routing import RouteRequest, plan
from gateway.wire import ChatCompletionRequest

CAPS = ["chat", "streaming", "tools", "vision", "json_mode"]


def snapshot() -> RegistrySnapshot:
    providers = {
        "anth": ProviderConfig(name="anth", type="anthropic"),
        "oa": ProviderConfig(name="oa", type="openai"),
        "local": ProviderConfig(name="local", type="ollama"),
    }
    models = [
        # The cheapest and best, so `auto` would pick it if nothing kept it away.
        ModelConfig(name="claude", provider="anth", capabilities=CAPS, quality=0.9),
        ModelConfig(
            name="gpt",
            provider="oa",
            capabilities=CAPS,
            quality=0.5,
            price={"input_per_mtok": 5.0, "output_per_mtok": 15.0},
        ),
        ModelConfig(
            name="llama", provider="local", capabilities=CAPS, quality=0.1, fallbacks=["claude"]
        ),
    ]
    return RegistrySnapshot(1, providers, {m.name: m for m in models})


def chat(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest(
        model=fields.pop("model", "auto"), messages=[{"role": "user", "content": "hi"}], **fields
    )


def route(body: ChatCompletionRequest, **hints: Any) -> RouteRequest:
    needs = needs_of(body)
    return RouteRequest(model=body.model, needs=needs.capabilities, params=needs.params, **hints)


def test_needs_are_capabilities_and_the_refusable_parameters_used() -> None:
    needs = needs_of(
        chat(
            n=2,
            temperature=0,
            logprobs=False,
            tools=[{"type": "function", "function": {"name": "f"}}],
            tool_choice="none",
            parallel_tool_calls=False,
        )
    )
    # Tools are needed whenever sent (the adapters pass them on), whatever tool_choice says.
    assert needs.capabilities == {"chat", "tools"}
    # temperature=0 is used; logprobs=False is not.
    assert needs.params == {"n", "temperature", "parallel_tool_calls"}
    forced = needs_of(
        chat(tool_choice="required", tools=[{"type": "function", "function": {"name": "f"}}])
    )
    assert "tool_choice" in forced.params


def test_auto_routes_around_a_provider_type_that_refuses_a_parameter() -> None:
    snap = snapshot()
    config = RoutingConfig(strategy="capability")
    assert plan(route(chat()), snap, config).names()[0] == "claude"
    decision = plan(route(chat(n=2)), snap, config)
    assert decision.names() == ["gpt"]  # anthropic and ollama refuse n
    assert plan(route(chat(temperature=0.2)), snap, config).names()[0] == "gpt"


def test_explain_says_which_parameter_the_provider_type_refuses() -> None:
    decision = plan(route(chat(n=2)), snapshot(), RoutingConfig(), explain=True)
    reasons = dict(decision.rejected)
    assert reasons["claude"] == "provider type 'anthropic' refuses n"


def test_when_every_model_refuses_the_error_names_the_parameter() -> None:
    snap = snapshot()
    only_claude = RegistrySnapshot(2, snap.providers, {"claude": snap.models["claude"]})
    with pytest.raises(InvalidRequestError) as caught:
        plan(route(chat(n=2)), only_claude, RoutingConfig())
    assert caught.value.param == "n" and caught.value.status_code == 400


def test_a_named_model_is_refused_before_any_hop_as_its_adapter_would() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        plan(route(chat(model="claude", n=2)), snapshot(), RoutingConfig())
    assert caught.value.param == "n"
    assert "'n' is not supported by provider type 'anthropic'" in str(caught.value)


def test_a_named_models_fallbacks_skip_types_that_refuse() -> None:
    decision = plan(route(chat(model="llama", temperature=0.5)), snapshot(), RoutingConfig())
    assert decision.names() == ["llama"]  # claude, its fallback, refuses temperature
    with pytest.raises(InvalidRequestError) as caught:
        plan(route(chat(model="llama", parallel_tool_calls=False)), snapshot(), RoutingConfig())
    assert caught.value.param == "parallel_tool_calls"


def test_adapters_declare_what_routing_reads() -> None:
    # The adapters' class attributes are the rows routing reads (no SDK import needed here).
    from gateway.providers.sim import SimProvider

    assert SimProvider.supports == SUPPORT["sim"].capabilities
    assert SimProvider.refuses == SUPPORT["sim"].refuses == frozenset()
    assert (
        "n" in SUPPORT["anthropic"].refuses
        and "embeddings" not in SUPPORT["anthropic"].capabilities
    )
