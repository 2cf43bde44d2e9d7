"""One call's time budget: `total_s` for all of it, `first_token_s` for a stream's start.

The base adapter runs every upstream call and every stream read inside its model's budget, so
no adapter times anything itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from gateway.config import Timeouts
from gateway.providers.upstream_errors import timeout_error

T = TypeVar("T")


@dataclass
class Deadline:
    """One call's time budget: `total_s` for all of it, `first_token_s` for a stream's start."""

    timeouts: Timeouts
    provider: str
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        """Seconds left of `total_s`."""
        return max(0.0, self.timeouts.total_s - (time.monotonic() - self.started))

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await within the total budget; past it, an `UpstreamTimeoutError`."""
        try:
            return await asyncio.wait_for(awaitable, self.remaining())
        except asyncio.TimeoutError:
            raise timeout_error(self.provider, self.timeouts.total_s) from None

    async def first(self, awaitable: Awaitable[T]) -> T:
        """Await a stream's opening within what is left of `first_token_s` (and `total_s`)."""
        elapsed = time.monotonic() - self.started
        limit = min(self.remaining(), max(0.0, self.timeouts.first_token_s - elapsed))
        try:
            return await asyncio.wait_for(awaitable, limit)
        except asyncio.TimeoutError:
            raise timeout_error(self.provider, self.timeouts.first_token_s) from None

    async def events(self, events: AsyncIterator[T]) -> AsyncIterator[T]:
        """A stream's events within the budget: the first by `first_token_s`, all by `total_s`."""
        first = True
        while True:
            limit = self.remaining()
            if first:
                elapsed = time.monotonic() - self.started
                limit = min(limit, max(0.0, self.timeouts.first_token_s - elapsed))
            try:
                event = await asyncio.wait_for(events.__anext__(), limit)
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                seconds = self.timeouts.first_token_s if first else self.timeouts.total_s
                raise timeout_error(self.provider, seconds) from None
            first = False
            yield event


class Unbounded(Deadline):
    """No budget: for the sim, whose delays are its settings (the invoker bounds the request)."""

    def __init__(self, provider: str) -> None:
        super().__init__(Timeouts(), provider)

    async def run(self, awaitable: Awaitable[T]) -> T:
        return await awaitable

    async def first(self, awaitable: Awaitable[T]) -> T:
        return await awaitable

    def events(self, events: AsyncIterator[T]) -> AsyncIterator[T]:
        return events
