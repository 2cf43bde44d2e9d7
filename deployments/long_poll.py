"""Following an actor's long-poll `watch` from a replica: back off while it is away, find it
again when it is gone for good. The registry feed and the access feed both follow this way."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ray.exceptions import ActorDiedError

log = logging.getLogger("llmgw.long_poll")

T = TypeVar("T")

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
