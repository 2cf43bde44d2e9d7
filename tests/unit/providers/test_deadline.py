"""A call's budget: total_s for the whole call, first_token_s for a stream's first event, and a
call whose budget is already spent never starts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.config import Timeouts
from gateway.errors import UpstreamTimeoutError
from gateway.providers.deadline import Deadline


async def paced(*delays: float) -> AsyncIterator[float]:
    for delay in delays:
        await asyncio.sleep(delay)
        yield delay


async def test_a_slow_first_event_times_out_on_first_token_s() -> None:
    deadline = Deadline(Timeouts(first_token_s=0.05, total_s=5), "p")
    with pytest.raises(UpstreamTimeoutError, match=r"within 0\.05s"):
        [e async for e in deadline.events(paced(0.5))]


async def test_later_events_have_the_rest_of_total_s() -> None:
    deadline = Deadline(Timeouts(first_token_s=0.05, total_s=0.6), "p")
    assert [e async for e in deadline.events(paced(0.0, 0.1, 0.1))] == [0.0, 0.1, 0.1]
    late = Deadline(Timeouts(first_token_s=0.05, total_s=0.2), "p")
    with pytest.raises(UpstreamTimeoutError, match=r"within 0\.2s"):
        [e async for e in late.events(paced(0.0, 0.1, 0.2))]


async def test_a_call_whose_budget_is_spent_never_starts() -> None:
    started = []

    async def call() -> None:
        started.append(True)

    deadline = Deadline(Timeouts(total_s=0.01), "p", started=0.0)
    with pytest.raises(UpstreamTimeoutError):
        await deadline.run(call())
    assert started == []


async def test_a_slow_call_is_cancelled_at_total_s() -> None:
    cancelled = asyncio.Event()

    async def call() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(UpstreamTimeoutError, match=r"within 0\.05s"):
        await Deadline(Timeouts(total_s=0.05), "p").run(call())
    assert cancelled.is_set()
