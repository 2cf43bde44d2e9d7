"""A request a named model cannot take is refused before any provider is called; `auto` picks
only models that can take it."""

from __future__ import annotations

import pytest

from gateway.config import RoutingConfig
from gateway.errors import ContextLengthError, InvalidRequestError
from gateway.registry.snapshot import RegistrySnapshot
from gateway.routing import RouteRequest, plan


def test_max_tokens_over_a_named_models_output_limit_names_the_limit(
    snapshot: RegistrySnapshot,
) -> None:
    request = RouteRequest(model="llama", max_output_tokens=5000, output_param="max_tokens")
    with pytest.raises(InvalidRequestError) as caught:
        plan(request, snapshot, RoutingConfig())
    assert caught.value.param == "max_tokens" and "4096" in caught.value.message


def test_a_prompt_beyond_a_named_models_window_is_context_length_exceeded(
    snapshot: RegistrySnapshot,
) -> None:
    with pytest.raises(ContextLengthError) as caught:
        plan(RouteRequest(model="llama", prompt_tokens=9000), snapshot, RoutingConfig())
    assert caught.value.code == "context_length_exceeded" and "8192" in caught.value.message


def test_auto_leaves_out_models_that_cannot_write_that_much(snapshot: RegistrySnapshot) -> None:
    request = RouteRequest(
        model="auto", max_output_tokens=5000, output_param="max_completion_tokens"
    )
    with pytest.raises(InvalidRequestError) as caught:
        plan(request, snapshot, RoutingConfig())
    assert caught.value.param == "max_completion_tokens"
    assert "4096" in caught.value.message
