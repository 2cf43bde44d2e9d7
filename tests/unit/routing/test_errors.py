"""When `auto` finds no model, the client learns which constraint to relax, with the right
status."""

from __future__ import annotations

import pytest

from gateway.config import CircuitConfig, RoutingConfig
from gateway.errors import (
    ContextLengthError,
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    ServiceUnavailableError,
)
from gateway.registry.snapshot import RegistrySnapshot
from gateway.routing import CircuitBoard, RouteRequest, TenantPolicy, plan

from .conftest import MODELS, FakeClock, build


def refused(
    snapshot: RegistrySnapshot, board: CircuitBoard | None = None, **fields
) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        plan(RouteRequest(model="auto", **fields), snapshot, RoutingConfig(), board)
    return caught.value


def test_a_use_case_no_model_serves_is_not_found(snapshot: RegistrySnapshot) -> None:
    error = refused(snapshot, use_case="translation")
    assert isinstance(error, ModelNotFoundError)
    assert (error.status_code, error.param) == (404, "use_case")
    assert error.message == "No model serves use case 'translation'."


def test_a_use_case_served_only_by_models_the_key_cannot_use_is_not_found(
    snapshot: RegistrySnapshot,
) -> None:
    only_testing = build([m for m in MODELS if m["name"] == "sim-next"])
    for error in (
        refused(snapshot, use_case="research", policy=TenantPolicy(allowed_models=frozenset())),
        refused(only_testing, use_case="research"),
        refused(snapshot, use_case="research", policy=TenantPolicy(allowed_providers={"ollama"})),
    ):
        assert isinstance(error, ModelNotFoundError)
        assert error.message == (
            "No model for use case 'research' exists or you do not have access to one."
        )


def test_no_model_with_a_needed_capability_names_the_capability_and_parameter(
    snapshot: RegistrySnapshot,
) -> None:
    error = refused(snapshot, use_case="classification", needs=frozenset({"chat", "vision"}))
    assert type(error) is InvalidRequestError
    assert (error.status_code, error.param) == (400, "messages")
    assert error.message == "No model for use case 'classification' supports vision."
    error = refused(snapshot, use_case="summarization", needs=frozenset({"streaming", "audio"}))
    assert error.message == "No model for use case 'summarization' supports audio."


def test_capabilities_only_found_on_different_models_are_reported_together(
    snapshot: RegistrySnapshot,
) -> None:
    policy = TenantPolicy(allowed_models=frozenset({"claude", "gpt-mini"}))
    error = refused(snapshot, needs=frozenset({"vision", "json_mode"}), policy=policy)
    assert error.message == "No model for use case 'chat' supports vision, json_mode together."
    assert error.param == "messages"


def test_a_prompt_too_large_for_every_model_is_a_context_length_error(
    snapshot: RegistrySnapshot,
) -> None:
    error = refused(snapshot, use_case="research", prompt_tokens=250_000, max_output_tokens=1000)
    assert isinstance(error, ContextLengthError)
    assert (error.status_code, error.code, error.param) == (
        400,
        "context_length_exceeded",
        "messages",
    )
    assert error.message.startswith(
        "No model for use case 'research' has a context window of 251000 tokens"
    )
    assert "the largest is 200000" in error.message


def test_the_error_names_the_constraint_that_removed_the_last_models(
    snapshot: RegistrySnapshot,
) -> None:
    # json_mode leaves only gpt-big (128k); the context window then removes it.
    error = refused(
        snapshot, use_case="research", needs=frozenset({"json_mode"}), prompt_tokens=150_000
    )
    assert isinstance(error, ContextLengthError)
    assert "the largest is 128000" in error.message


def test_a_cost_cap_nothing_meets_names_who_set_it(snapshot: RegistrySnapshot) -> None:
    error = refused(snapshot, use_case="research", max_cost_per_mtok=1.0)
    assert (error.status_code, error.param) == (400, "route.max_cost_per_mtok")
    assert error.message.startswith("No model for use case 'research' fits route.max_cost_per_mtok")
    assert "the cheapest is $6.00/Mtok" in error.message
    error = refused(snapshot, use_case="research", policy=TenantPolicy(max_cost_per_mtok=1.0))
    assert error.param is None
    assert "this key's limit $1.00/Mtok" in error.message


def test_a_latency_cap_nothing_meets(snapshot: RegistrySnapshot) -> None:
    error = refused(snapshot, use_case="research", max_latency_ms=500.0)
    assert (error.status_code, error.param) == (400, "route.max_latency_ms")
    assert "the fastest is 900 ms" in error.message


def test_providers_that_serve_nothing_suitable(snapshot: RegistrySnapshot) -> None:
    error = refused(snapshot, use_case="research", providers=frozenset({"ollama"}))
    assert (error.status_code, error.param) == (400, "route.providers")
    assert error.message == (
        "No model for use case 'research' is served by the providers in route.providers (ollama)."
    )


def test_an_unknown_strategy_is_a_400(snapshot: RegistrySnapshot) -> None:
    error = refused(snapshot, strategy="fastest")
    assert (error.status_code, error.param) == (400, "route.strategy")
    assert error.message.startswith("Invalid routing strategy 'fastest'")


def test_when_every_fitting_model_has_an_open_circuit_it_is_a_503_with_retry_after(
    snapshot: RegistrySnapshot, clock: FakeClock
) -> None:
    board = CircuitBoard(CircuitConfig(failure_threshold=1, open_s=20.0), clock)
    board.get("openai", "gpt-big").record(False)
    clock.advance(2.0)
    board.get("anthropic", "claude").record(False)
    error = refused(snapshot, board, use_case="research")
    assert isinstance(error, ServiceUnavailableError)
    assert error.status_code == 503
    assert error.retry_after == pytest.approx(18.0)
    clock.advance(18.0)  # gpt-big half-opens: its probe may go
    request = RouteRequest(model="auto", use_case="research")
    assert plan(request, snapshot, RoutingConfig(), board).names() == ["gpt-big"]


def test_one_open_circuit_moves_traffic_to_the_next_model(
    snapshot: RegistrySnapshot, clock: FakeClock
) -> None:
    board = CircuitBoard(CircuitConfig(failure_threshold=1), clock)
    request = RouteRequest(model="auto", use_case="research", strategy="capability")
    assert plan(request, snapshot, RoutingConfig(), board).names() == ["gpt-big", "claude"]
    board.get("openai", "gpt-big").record(False)
    assert plan(request, snapshot, RoutingConfig(), board).names() == ["claude"]
