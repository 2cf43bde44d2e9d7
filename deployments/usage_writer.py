"""Usage and audit records, written to the store in batches off the request path.

Replicas buffer records in a `UsageSink` and ship them every 0.5 s to the `UsageWriter` actor.
The writer acknowledges a batch only once it is in its local spool (fsync'd, under
`LLMGW_HOME/spool/`), then writes it to the store every 0.5 s or 500 records; while the store
is away batches wait in the spool, and a restarted writer replays them. What a hard kill can
lose is a replica's unshipped buffer (at most ~0.5 s of its requests); a graceful stop
(`UsageSink.aclose()`, then `UsageWriter.drain()`) loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import ActorDiedError

from gateway.config import state_dir
from gateway.store import AuditEvent, Store, UsageRecord
from gateway.usage.dead_letter import DeadLetter
from gateway.usage.spool import Spool, SpoolBusyError
from gateway.usage.writer import RecordWriter

log = logging.getLogger("llmgw.usage")

WRITER_NAME = "llmgw-usage-writer"
NAMESPACE = "llmgw"

FLUSH_INTERVAL_S = 0.5
FLUSH_RECORDS = 500


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class UsageWriter:
    """Takes usage and audit records from every replica, spools them, writes them in batches."""

    def __init__(
        self,
        store_url: str,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        flush_records: int = FLUSH_RECORDS,
        name: str = WRITER_NAME,
        home: str | None = None,
    ) -> None:
        # The schema is migrated on the first flush, so the writer starts (and spools) even
        # while the database is unreachable; spooled batches from a previous life are replayed.
        root = Path(home) if home else state_dir()
        self._records = RecordWriter(
            Store(store_url),
            _open_spool(root / "spool", name),
            DeadLetter(root / "dead-letter"),
            interval_s=flush_interval_s,
        )
        self._flush_records = flush_records
        self._unflushed = 0
        self._records.start()

    async def write(self, usage: Sequence[UsageRecord], audit: Sequence[AuditEvent]) -> int:
        """Spool records; returns (once they are on disk) how many wait for the next flush."""
        await asyncio.to_thread(self._records.accept, [*usage, *audit])
        self._unflushed += len(usage) + len(audit)
        if self._unflushed >= self._flush_records:
            self._unflushed = 0
            self._records.wake()
        return self._unflushed

    async def flush(self) -> int:
        """Write everything spooled now; returns how many records were handled."""
        self._unflushed = 0
        return await asyncio.to_thread(self._records.flush)

    async def drain(self, timeout_s: float = 30.0) -> int:
        """Write everything, retrying until done or `timeout_s`; for a graceful stop."""
        self._unflushed = 0
        return await asyncio.to_thread(self._records.drain, timeout_s)

    async def stats(self) -> dict[str, Any]:
        """Counters: accepted, written, duplicates, dead-lettered, failed flushes, and
        `pending` (spool segments not yet in the store) and the spool's directory."""
        return self._records.counts | {
            "pending": self._records.pending_segments(),
            "spool": str(self._records.spool.directory),
        }


def _open_spool(root: Path, name: str) -> Spool:
    try:
        return Spool(root / name)
    except SpoolBusyError:
        # Another writer of this name runs on this machine (a second cluster sharing
        # LLMGW_HOME): a private directory, replayed only by a writer that finds it the same way.
        log.warning("spool %s is in use; this writer spools under %s.%d", name, name, os.getpid())
        return Spool(root / f"{name}.{os.getpid()}")


def _extend(queue: deque[Any], items: Sequence[Any]) -> int:
    """Append to a bounded deque; returns how many old items fell off the front."""
    room = (queue.maxlen or len(queue) + len(items)) - len(queue)
    queue.extend(items)
    return max(0, len(items) - room)


def get_or_create_usage_writer(
    store_url: str,
    *,
    name: str = WRITER_NAME,
    namespace: str = NAMESPACE,
    resources: Mapping[str, float] | None = None,
) -> ActorHandle:
    """The cluster's usage writer, started (detached) by the first caller."""
    return UsageWriter.options(
        name=name,
        namespace=namespace,
        lifetime="detached",
        get_if_exists=True,
        **({"resources": resources} if resources else {}),
    ).remote(store_url, name=name)


class UsageSink:
    """A replica's buffer of usage and audit records, shipped to the writer every 0.5 s.

    `usage()` and `audit()` never wait: the shipping runs in a background task.
    """

    def __init__(
        self,
        writer: Any,
        *,
        interval_s: float = FLUSH_INTERVAL_S,
        max_batch: int = FLUSH_RECORDS,
        max_buffered: int = 50_000,
        reconnect: Callable[[], Any] | None = None,
    ) -> None:
        """`reconnect`, when given, returns a handle to a live writer (for instance
        `get_or_create_usage_writer(...)`); it is called when the writer is gone for good."""
        self._writer = writer
        self._reconnect = reconnect
        self._interval_s = interval_s
        self._max_batch = max_batch
        self._usage: deque[UsageRecord] = deque(maxlen=max_buffered)
        self._audit: deque[AuditEvent] = deque(maxlen=max_buffered)
        self._full = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.dropped = 0

    def usage(self, record: UsageRecord) -> None:
        """Buffer one usage record."""
        self.dropped += _extend(self._usage, (record,))
        self._wake()

    def audit(self, event: AuditEvent) -> None:
        """Buffer one audit event."""
        self.dropped += _extend(self._audit, (event,))
        self._wake()

    @property
    def pending(self) -> int:
        return len(self._usage) + len(self._audit)

    async def flush(self) -> None:
        """Ship everything buffered now; on failure the records stay buffered and it raises.

        Delivery is at least once: a batch whose call was interrupted is sent again."""
        async with self._lock:
            while self._usage or self._audit:
                usage = _take(self._usage, self._max_batch)
                audit = _take(self._audit, self._max_batch)
                try:
                    await self._writer.write.remote(usage, audit)
                except BaseException:
                    self._usage.extendleft(reversed(usage))
                    self._audit.extendleft(reversed(audit))
                    raise

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Ship what is left and stop (graceful stop): a batch in flight is let finish, not
        cancelled, so nothing is sent twice."""
        self._closed = True
        self._full.set()
        try:
            if self._task is not None:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            try:
                await asyncio.wait_for(self.flush(), timeout_s)
            except ActorDiedError:
                if self._reconnect is None:
                    raise
                self._writer = self._reconnect()
                await asyncio.wait_for(self.flush(), timeout_s)
        except Exception as exc:
            log.error("usage sink closed with %d records unshipped: %r", self.pending, exc)
        finally:
            if self._task is not None:
                self._task.cancel()

    def _wake(self) -> None:
        if self._closed:
            return
        if self._task is None or self._task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no event loop here: records wait for flush() or aclose()
            self._task = loop.create_task(self._ship(), name="llmgw-usage-sink")
        if self.pending >= self._max_batch:
            self._full.set()

    async def _ship(self) -> None:
        pause = self._interval_s
        while not self._closed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._full.wait(), pause)
            self._full.clear()
            if self._closed:
                return  # aclose() ships the rest
            try:
                await self.flush()
                pause = self._interval_s
            except Exception as exc:
                log.warning(
                    "usage sink: writer unreachable (%r), %d records buffered", exc, self.pending
                )
                pause = min(pause * 2, 5.0)
                if isinstance(exc, ActorDiedError) and self._reconnect is not None:
                    try:
                        self._writer = self._reconnect()
                    except Exception as lookup:
                        log.warning("usage writer not found again (%r)", lookup)


def _take(queue: deque[Any], count: int) -> list[Any]:
    return [queue.popleft() for _ in range(min(count, len(queue)))]
