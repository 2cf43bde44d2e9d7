"""The pool watch: calls waiting for a replica of a pool Serve cannot start one for are
refused; a pool replacing a lost replica, or starting one, is waited for."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from deployments.pool_status import NO_REPLICA, PoolWatch, _verdict


class Waiting:
    """A handle call Serve has not yet handed to a replica."""

    def __init__(self) -> None:
        self._replica_result_future = asyncio.get_running_loop().create_future()
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def status(value: str, trigger: str = "UNSPECIFIED") -> SimpleNamespace:
    return SimpleNamespace(status=SimpleNamespace(value=value), status_trigger=trigger)


def test_only_a_pool_whose_replicas_fail_to_start_has_no_replica_to_wait_for() -> None:
    assert _verdict(status("DEPLOY_FAILED")) in NO_REPLICA
    assert _verdict(status("UNHEALTHY", "REPLICA_STARTUP_FAILED")) in NO_REPLICA
    # A replica lost with its node, or failing its health check: Serve replaces it.
    assert _verdict(status("UNHEALTHY", "HEALTH_CHECK_FAILED")) not in NO_REPLICA
    assert _verdict(status("UNHEALTHY")) not in NO_REPLICA
    assert _verdict(status("UPSCALING")) not in NO_REPLICA


@pytest.mark.parametrize(
    ("verdict", "refused"),
    [
        ("UNHEALTHY (REPLICA_STARTUP_FAILED)", True),
        ("DEPLOY_FAILED", True),
        ("UNHEALTHY (HEALTH_CHECK_FAILED)", False),
        ("UPDATING", False),
    ],
)
async def test_a_call_waiting_two_checks_is_refused_only_at_a_pool_that_cannot_start_one(
    verdict: str, refused: bool
) -> None:
    async def statuses() -> dict[str, str]:
        return {"OpenAIPool": verdict}

    watch = PoolWatch({"openai": "OpenAIPool"}, statuses)
    call = Waiting()
    watch.waiting["openai"].add(call)
    await watch.check()  # first seen waiting: not yet due
    assert not call.cancelled
    await watch.check()
    assert call.cancelled is refused
    error = watch.refusal(call)
    assert (error is not None) is refused
    if error is not None:
        assert error.status_code == 503 and error.code == "pool_no_replica"
        assert "OpenAIPool" in error.message
