"""A replica's side of the registry: the current snapshot, kept fresh by a background long poll,
and call samples shipped to the registry actor about once a second.

The request path only reads `current` and appends to a buffer; it never waits on the actor.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from deployments.long_poll import ActorLink, VersionedFeed
from gateway.registry.snapshot import RegistrySnapshot
from gateway.registry.stats import CallSample

log = logging.getLogger("llmgw.snapshot_feed")

# A watch returns by itself after its timeout; allow this much more before calling it lost.
_WATCH_SLACK_S = 10.0


class SnapshotFeed(VersionedFeed[RegistrySnapshot]):
    """The registry snapshot a replica routes on, pushed by the registry actor's `watch`."""

    def __init__(
        self,
        actor: Any,
        *,
        watch_timeout_s: float = 30.0,
        report_interval_s: float = 1.0,
        max_buffered: int = 10_000,
        start_timeout_s: float = 60.0,
        reconnect: Callable[[], Any] | None = None,
        prepare: Callable[[RegistrySnapshot], None] | None = None,
    ) -> None:
        """`reconnect`, when given, returns a handle to a live registry actor (for instance
        `get_or_create_registry(...)`); it is called when the actor is gone for good.
        `prepare` runs on each new snapshot, off the event loop, before requests see it (the
        router builds its tables there, not on the first request)."""
        super().__init__()
        self._link = ActorLink(actor, "registry", reconnect)
        self._prepare = prepare
        self._watch_timeout_s = watch_timeout_s
        self._report_interval_s = report_interval_s
        self._start_timeout_s = start_timeout_s
        # Samples are statistics: when the actor is away the oldest are dropped, never blocked on.
        self._samples: deque[CallSample] = deque(maxlen=max_buffered)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def connected(self) -> bool:
        """Whether the last call to the registry actor succeeded."""
        return self._link.connected

    async def start(self) -> RegistrySnapshot:
        """Fetch the first snapshot (retrying while the actor starts), then follow changes."""
        snapshot = await self._link.first(lambda a: a.snapshot.remote(), self._start_timeout_s)
        await self._set(snapshot)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._link.follow(self._poll, self._set), name="llmgw-snapshot-watch"),
            loop.create_task(self._ship_samples(), name="llmgw-sample-report"),
        ]
        return snapshot

    def report(self, sample: CallSample) -> None:
        """Buffer one call sample; it reaches the registry with the next batch."""
        self._samples.append(sample)

    async def flush(self) -> None:
        """Send buffered samples now."""
        if not self._samples:
            return
        batch = list(self._samples)
        self._samples.clear()
        try:
            await asyncio.wait_for(self._link.actor.report.remote(batch), _WATCH_SLACK_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("dropped %d call samples: registry unreachable (%r)", len(batch), exc)

    async def aclose(self) -> None:
        """Stop following; send what samples are buffered."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.flush()

    # ------------------------------------------------------------------ background

    async def _set(self, snapshot: RegistrySnapshot) -> None:
        if self._prepare is not None:
            try:
                await asyncio.to_thread(self._prepare, snapshot)
            except Exception:
                log.exception("preparing registry version %d failed", snapshot.version)
        await self._publish(snapshot)

    async def _poll(self, actor: Any) -> RegistrySnapshot | None:
        known = self.current
        return await asyncio.wait_for(
            actor.watch.remote(known.version, known.stats_version, self._watch_timeout_s),
            self._watch_timeout_s + _WATCH_SLACK_S,
        )

    async def _ship_samples(self) -> None:
        while True:
            await asyncio.sleep(self._report_interval_s)
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("shipping call samples failed")
