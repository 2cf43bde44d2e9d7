"""Ray's own failures on a pool call become errors the invoker can act on, never a 500."""

from __future__ import annotations

import pytest
from ray.exceptions import OutOfMemoryError, RayActorError
from ray.serve.exceptions import BackPressureError, RequestCancelledError

from deployments.pool import unwrap
from gateway.errors import GatewayError
from gateway.pipeline.invoker import counts_against_circuit, falls_back


@pytest.mark.parametrize(
    "error",
    [
        BackPressureError(num_queued_requests=10, max_queued_requests=10),
        OutOfMemoryError("the node is out of memory"),
        RayActorError(),
    ],
)
def test_pool_trouble_is_a_retryable_503_that_falls_back(error: Exception) -> None:
    mapped = unwrap(error)
    assert isinstance(mapped, GatewayError)
    assert mapped.status_code == 503 and mapped.retryable
    assert falls_back(mapped) and counts_against_circuit(mapped)


def test_back_pressure_says_when_to_retry() -> None:
    mapped = unwrap(BackPressureError(num_queued_requests=1, max_queued_requests=1))
    assert isinstance(mapped, GatewayError) and mapped.retry_after is not None


def test_a_cancelled_call_is_a_clean_error_that_blames_no_model() -> None:
    mapped = unwrap(RequestCancelledError("req_1"))
    assert isinstance(mapped, GatewayError) and mapped.status_code == 503
    assert not falls_back(mapped) and not counts_against_circuit(mapped)
    assert "cancelled" in mapped.message
