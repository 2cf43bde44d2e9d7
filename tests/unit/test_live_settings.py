"""Live settings: validated user_configs, applied in place by each deployment's reconfigure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from deployments import live_settings
from deployments.live_settings import (
    BoundedUpstream,
    CallLimit,
    reconfigure_ingress,
    reconfigure_pool,
    reconfigure_router,
)
from gateway.errors import ServiceUnavailableError


@pytest.fixture(autouse=True)
def json_logs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Pools and the Router set up their own JSON handlers; here that is only recorded, so
    this process's loggers keep propagating to pytest's capture."""
    calls: list[str] = []
    monkeypatch.setattr(live_settings, "configure_json_logs", lambda: calls.append("json"))
    return calls


class SlowUpstream:
    """Counts how many calls are inside it at once."""

    def __init__(self, delay_s: float = 0.05) -> None:
        self.delay_s = delay_s
        self.inside = 0
        self.most = 0

    async def _enter(self) -> None:
        self.inside += 1
        self.most = max(self.most, self.inside)
        await asyncio.sleep(self.delay_s)
        self.inside -= 1

    async def send(self, call: Any) -> str:
        await self._enter()
        return "done"

    async def stream(self, call: Any) -> AsyncIterator[str]:
        self.inside += 1
        self.most = max(self.most, self.inside)
        try:
            for part in ("a", "b"):
                await asyncio.sleep(self.delay_s / 2)
                yield part
        finally:
            self.inside -= 1


class Pool:
    """What reconfigure_pool needs of a ProviderPool: its upstream."""

    def __init__(self) -> None:
        self.upstream: Any = SlowUpstream()


CALL = SimpleNamespace(provider="sim")


async def _calls(upstream: Any, n: int, call: Any = CALL) -> list[Any]:
    async def one(i: int) -> Any:
        if i % 2:
            return [part async for part in upstream.stream(call)]
        return await upstream.send(call)

    return await asyncio.gather(*(one(i) for i in range(n)))


async def test_pool_bound_holds_and_is_resized_live() -> None:
    pool = Pool()
    slow = pool.upstream
    await reconfigure_pool(pool, {"max_concurrent_calls": 2})
    assert isinstance(pool.upstream, BoundedUpstream)
    results = await _calls(pool.upstream, 8)
    assert results.count("done") == 4 and results.count(["a", "b"]) == 4
    assert slow.most == 2
    # Resized in place: the same wrapper, a new bound.
    wrapper = pool.upstream
    await reconfigure_pool(pool, {"max_concurrent_calls": 5})
    assert pool.upstream is wrapper
    slow.most = 0
    await _calls(pool.upstream, 10)
    assert slow.most == 5
    await reconfigure_pool(pool, {})
    slow.most = 0
    await _calls(pool.upstream, 10)
    assert slow.most == 10


async def test_each_provider_of_a_pool_has_its_own_bound() -> None:
    slow = SlowUpstream()
    bounded = BoundedUpstream(slow)
    bounded.resize(2, 5)
    other = SimpleNamespace(provider="other")
    await asyncio.gather(_calls(bounded, 6), _calls(bounded, 6, other))
    assert slow.most == 4
    assert {name: limit.limit for name, limit in bounded.limits.items()} == {"sim": 2, "other": 2}


async def test_raising_the_bound_lets_waiting_calls_in_at_once() -> None:
    limit = CallLimit(1, timeout_s=5)
    await limit.acquire()
    waiting = [asyncio.create_task(limit.acquire()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert not any(t.done() for t in waiting)
    limit.resize(4, 5)
    await asyncio.wait_for(asyncio.gather(*waiting), 1)
    assert limit.active == 4


async def test_a_call_that_waits_too_long_is_a_retryable_503_and_frees_nothing() -> None:
    limit = CallLimit(1, timeout_s=0.05)
    await limit.acquire()
    with pytest.raises(ServiceUnavailableError) as raised:
        await limit.acquire()
    assert raised.value.code == "pool_at_capacity" and raised.value.retryable
    limit.release()
    assert limit.active == 0
    await asyncio.wait_for(limit.acquire(), 1)  # the timed-out waiter holds no slot
    assert limit.active == 1


async def test_a_waiter_cancelled_as_its_turn_came_passes_the_slot_on() -> None:
    limit = CallLimit(1, timeout_s=5)
    await limit.acquire()
    first = asyncio.create_task(limit.acquire())
    second = asyncio.create_task(limit.acquire())
    await asyncio.sleep(0.01)
    limit.release()  # hands the slot to `first` ...
    first.cancel()  # ... which leaves before it runs again
    await asyncio.wait_for(second, 1)
    assert limit.active == 1


async def test_a_smaller_bound_admits_no_more_until_calls_in_flight_drop_below_it() -> None:
    limit = CallLimit(3, timeout_s=5)
    for _ in range(3):
        await limit.acquire()
    limit.resize(1, 5)
    late = asyncio.create_task(limit.acquire())
    limit.release()
    limit.release()
    await asyncio.sleep(0.01)
    assert not late.done()
    limit.release()
    await asyncio.wait_for(late, 1)
    assert limit.active == 1


async def test_log_level_and_access_log_apply_to_the_gateway_loggers() -> None:
    access = logging.getLogger("llmgw.access")
    try:
        await reconfigure_ingress({"log_level": "WARNING", "access_log": False})
        assert logging.getLogger("llmgw").level == logging.WARNING
        assert logging.getLogger("gateway").level == logging.WARNING
        assert not access.isEnabledFor(logging.CRITICAL)
        await reconfigure_router({"log_level": "DEBUG"})
        assert logging.getLogger("llmgw").level == logging.DEBUG
        await reconfigure_ingress({})
        assert access.isEnabledFor(logging.INFO)
    finally:
        for name in ("llmgw", "gateway", "deployments", "llmgw.access"):
            logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.mark.parametrize(
    "user_config",
    [{"log_level": "LOUD"}, {"max_concurrent_calls": 0}, {"queue_timeout_s": -1}, {"x": 1}, [3]],
)
async def test_a_bad_pool_user_config_is_logged_and_changes_nothing(
    user_config: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Raising would make Serve replace the replicas, which refuse it again: no replica left.
    pool = Pool()
    pool.provider_type = "sim"
    await reconfigure_pool(pool, {"max_concurrent_calls": 3, "log_level": "WARNING"})
    try:
        with caplog.at_level(logging.ERROR, logger="llmgw.live"):
            assert await reconfigure_pool(pool, user_config) is None
        assert pool.upstream.bound == 3
        assert logging.getLogger("llmgw").level == logging.WARNING
        (record,) = [r for r in caplog.records if r.name == "llmgw.live"]
        assert record.getMessage().startswith("SimPool user_config refused, settings unchanged")
    finally:
        logging.getLogger("llmgw").setLevel(logging.NOTSET)


async def test_pools_and_the_router_log_on_their_own_the_ingress_as_configured(
    json_logs: list[str],
) -> None:
    await reconfigure_ingress({})
    assert json_logs == []
    await reconfigure_pool(Pool(), {})
    await reconfigure_router({})
    assert json_logs == ["json", "json"]


async def test_a_bad_ingress_or_router_user_config_changes_nothing() -> None:
    assert await reconfigure_ingress({"access_log": "sometimes"}) is None
    assert await reconfigure_router({"log_level": 5}) is None
