"""Blocking SDK calls (boto3) off the event loop, in a pool whose backlog is bounded.

A thread cannot be interrupted: a call abandoned at its deadline keeps its thread until the
SDK returns (its socket timeout at worst). So the pool refuses work beyond `threads + backlog`
calls with a 503 instead of queueing without end behind calls nobody awaits any more, and a
call not yet started when it is abandoned never starts.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from gateway.errors import ServiceUnavailableError

T = TypeVar("T")


class BlockingPool:
    """A provider's threads for blocking calls: at most `threads` running, `backlog` waiting."""

    def __init__(self, threads: int, *, backlog: int, name: str, provider: str) -> None:
        self.threads = threads
        self.limit = threads + backlog
        self.provider = provider
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._outstanding = 0

    @property
    def outstanding(self) -> int:
        """Calls running or waiting for a thread."""
        return self._outstanding

    def submit(self, call: Callable[..., T], *args: Any, admit: bool = True) -> asyncio.Future[T]:
        """`call(*args)` in a thread, awaitable; a 503 when the pool is saturated. A call's
        later steps (a stream's reads) pass `admit=False`: it was admitted already."""
        with self._lock:
            if admit and self._outstanding >= self.limit:
                raise ServiceUnavailableError(
                    f"provider '{self.provider}' has too many calls in progress on this "
                    "replica; try again shortly",
                    provider=self.provider,
                    code="provider_overloaded",
                    retry_after=1.0,
                )
            self._outstanding += 1
        future = self._executor.submit(call, *args)
        future.add_done_callback(self._release)
        # Cancelling the asyncio future cancels the thread's future if it has not started.
        return asyncio.wrap_future(future)

    def _release(self, _: Future[Any]) -> None:
        with self._lock:
            self._outstanding -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


async def gather_bounded(calls: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Every call's result in order, at most `limit` at a time; the first failure cancels the
    rest (those in flight and those not begun) and is raised."""
    results: list[Any] = [None] * len(calls)
    indices = iter(range(len(calls)))

    async def worker() -> None:
        for i in indices:
            results[i] = await calls[i]()

    workers = [asyncio.ensure_future(worker()) for _ in range(min(limit, len(calls)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for each in workers:
            each.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    return results
