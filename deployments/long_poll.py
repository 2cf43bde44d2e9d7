"""Long polls between a named actor and every replica: the actor wakes pending `watch` calls
on a change; a replica follows, backs off while the actor is away, finds it again when it is
gone for good, and holds the newest versioned snapshot. The registry and the access actor
both work this way."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

from ray.exceptions import ActorDiedError

log = logging.getLogger("llmgw.long_poll")

T = TypeVar("T")


class Versioned(Protocol):
    version: int


V = TypeVar("V", bound=Versioned)

MIN_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0


class ActorLink:
    """A handle on a named actor, looked up (or started) anew by `reconnect` once it died."""

    def __init__(self, actor: Any, what: str, reconnect: Callable[[], Any] | None = None) -> None:
        self.actor = actor
        self.what = what
        self.connected = False
        self._reconnect = reconnect

    async def first(self, call: Callable[[Any], Awaitable[T]], timeout_s: float) -> T:
        """`call(actor)`, retried with backoff while the actor starts, for up to `timeout_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        delay = MIN_BACKOFF_S
        while True:
            try:
                result = await asyncio.wait_for(call(self.actor), timeout_s)
                self.connected = True
                return result
            except Exception as exc:
                if loop.time() + delay > deadline:
                    raise RuntimeError(
                        f"no answer from the {self.what} within {timeout_s:.0f} s: {exc!r}"
                    ) from exc
                log.warning("%s not reachable yet (%r); retrying", self.what, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)

    async def follow(
        self,
        poll: Callable[[Any], Awaitable[T | None]],
        apply: Callable[[T], Awaitable[None]],
    ) -> None:
        """Forever: `poll(actor)` (a long poll answering None when nothing changed), and
        `apply` what it answers."""
        delay = MIN_BACKOFF_S
        while True:
            try:
                update = await poll(self.actor)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A restarting actor comes back behind the same handle (max_restarts=-1), so
                # back off and ask again; one gone for good is looked up (or started) anew.
                if self.connected:
                    log.warning("%s watch failed (%r); retrying with backoff", self.what, exc)
                self.connected = False
                if isinstance(exc, ActorDiedError) and self._reconnect is not None:
                    try:
                        self.actor = self._reconnect()
                    except Exception as lookup:
                        log.warning("%s not found again (%r)", self.what, lookup)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            if not self.connected:
                log.info("%s watch connected", self.what)
            self.connected = True
            delay = MIN_BACKOFF_S
            if update is not None:
                await apply(update)


class ChangeSignal:
    """The actor side of a long poll: `notify` wakes every pending watch at once; watches
    that start later wait for the next change."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(self, ready: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until `ready()` holds (checked after each change), or `timeout_s` passed;
        returns whether it holds."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while not ready():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._event.wait(), remaining)
            except TimeoutError:
                return ready()
        return True


class VersionedFeed(Generic[V]):
    """The replica side: the newest versioned snapshot an actor pushed, and a way to wait for
    a version (read-your-writes after an admin change)."""

    def __init__(self) -> None:
        self._current: V | None = None
        self._updated = asyncio.Condition()

    @property
    def current(self) -> V:
        """The newest snapshot this replica has."""
        if self._current is None:
            raise RuntimeError(f"{type(self).__name__}.start() has not completed")
        return self._current

    async def wait_for_version(self, version: int, timeout_s: float = 10.0) -> V:
        """Wait until this replica holds `version` or newer."""
        async with self._updated:
            await asyncio.wait_for(
                self._updated.wait_for(
                    lambda: self._current is not None and self._current.version >= version
                ),
                timeout_s,
            )
        return self.current

    async def _publish(self, snapshot: V) -> None:
        async with self._updated:
            self._current = snapshot
            self._updated.notify_all()
