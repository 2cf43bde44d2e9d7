"""A replica's side of the access actor: the current tenants and keys, kept fresh by a
background long poll. The request path only reads `current`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from deployments.long_poll import ActorLink
from gateway.tenancy.access import AccessSnapshot

# A watch returns by itself after its timeout; allow this much more before calling it lost.
_WATCH_SLACK_S = 10.0


class AccessFeed:
    """The access snapshot a replica authenticates with, pushed by the access actor."""

    def __init__(
        self,
        actor: Any,
        *,
        watch_timeout_s: float = 30.0,
        start_timeout_s: float = 60.0,
        reconnect: Callable[[], Any] | None = None,
    ) -> None:
        self._link = ActorLink(actor, "access actor", reconnect)
        self._watch_timeout_s = watch_timeout_s
        self._start_timeout_s = start_timeout_s
        self._current: AccessSnapshot | None = None
        self._updated = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    @property
    def actor(self) -> Any:
        return self._link.actor

    @property
    def current(self) -> AccessSnapshot:
        if self._current is None:
            raise RuntimeError("AccessFeed.start() has not completed")
        return self._current

    async def start(self) -> AccessSnapshot:
        snapshot = await self._link.first(lambda a: a.snapshot.remote(), self._start_timeout_s)
        await self._set(snapshot)
        self._task = asyncio.get_running_loop().create_task(
            self._link.follow(self._poll, self._set), name="llmgw-access-watch"
        )
        return snapshot

    async def wait_for_version(self, version: int, timeout_s: float = 5.0) -> AccessSnapshot:
        """Wait until this replica holds access `version` or newer (read-your-writes)."""
        async with self._updated:
            await asyncio.wait_for(
                self._updated.wait_for(
                    lambda: self._current is not None and self._current.version >= version
                ),
                timeout_s,
            )
        return self.current

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _poll(self, actor: Any) -> AccessSnapshot | None:
        return await asyncio.wait_for(
            actor.watch.remote(self.current.version, self._watch_timeout_s),
            self._watch_timeout_s + _WATCH_SLACK_S,
        )

    async def _set(self, snapshot: AccessSnapshot) -> None:
        async with self._updated:
            self._current = snapshot
            self._updated.notify_all()
