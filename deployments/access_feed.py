"""A replica's side of the access actor: the current tenants and keys, kept fresh by a
background long poll. The request path only reads `current`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from deployments.long_poll import ActorLink, VersionedFeed
from gateway.tenancy.access import AccessSnapshot

# A watch returns by itself after its timeout; allow this much more before calling it lost.
_WATCH_SLACK_S = 10.0


class AccessFeed(VersionedFeed[AccessSnapshot]):
    """The access snapshot a replica authenticates with, pushed by the access actor."""

    def __init__(
        self,
        actor: Any,
        *,
        watch_timeout_s: float = 30.0,
        start_timeout_s: float = 60.0,
        reconnect: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__()
        self._link = ActorLink(actor, "access actor", reconnect)
        self._watch_timeout_s = watch_timeout_s
        self._start_timeout_s = start_timeout_s
        self._task: asyncio.Task[None] | None = None

    @property
    def actor(self) -> Any:
        return self._link.actor

    async def start(self) -> AccessSnapshot:
        snapshot = await self._link.first(lambda a: a.snapshot.remote(), self._start_timeout_s)
        await self._publish(snapshot)
        self._task = asyncio.get_running_loop().create_task(
            self._link.follow(self._poll, self._publish), name="llmgw-access-watch"
        )
        return snapshot

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _poll(self, actor: Any) -> AccessSnapshot | None:
        return await asyncio.wait_for(
            actor.watch.remote(self.current.version, self._watch_timeout_s),
            self._watch_timeout_s + _WATCH_SLACK_S,
        )
