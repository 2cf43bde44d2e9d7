"""Usage and audit records, written to the store in batches off the request path.

Replicas buffer records in a `UsageSink` and ship them every 0.5 s to the `UsageWriter` actor,
which writes to the store every 0.5 s or 500 records. What a hard crash can lose is what sits
in those two buffers; a graceful stop (`UsageSink.aclose()`, then `UsageWriter.drain()`)
loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import ActorDiedError

from gateway.store import AuditEvent, Store, UsageRecord

log = logging.getLogger("llmgw.usage")

WRITER_NAME = "llmgw-usage-writer"
NAMESPACE = "llmgw"

FLUSH_INTERVAL_S = 0.5
FLUSH_RECORDS = 500
# One transaction's worth when a backlog built up while the database was away.
_CHUNK = 5_000


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class UsageWriter:
    """Buffers usage and audit records from every replica and writes them in batches."""

    def __init__(
        self,
        store_url: str,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        flush_records: int = FLUSH_RECORDS,
        max_buffered: int = 200_000,
    ) -> None:
        # The schema is migrated on the first flush, so the writer starts (and buffers) even
        # while the database is unreachable.
        self._store = Store(store_url)
        self._migrated = False
        self._flush_interval_s = flush_interval_s
        self._flush_records = flush_records
        self._usage: deque[UsageRecord] = deque(maxlen=max_buffered)
        self._audit: deque[AuditEvent] = deque(maxlen=max_buffered)
        self._lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None
        self._failure_logged_at = float("-inf")
        self._counts = {"usage_written": 0, "audit_written": 0, "dropped": 0, "failed_flushes": 0}

    async def write(self, usage: Sequence[UsageRecord], audit: Sequence[AuditEvent]) -> int:
        """Buffer records; returns how many wait to be written."""
        self._start_ticker()
        self._counts["dropped"] += _extend(self._usage, usage) + _extend(self._audit, audit)
        pending = len(self._usage) + len(self._audit)
        if pending >= self._flush_records and not self._lock.locked():
            asyncio.get_running_loop().create_task(self._flush_quietly())
        return pending

    async def flush(self) -> int:
        """Write everything buffered now; returns how many records were written."""
        async with self._lock:
            usage, audit = list(self._usage), list(self._audit)
            self._usage.clear()
            self._audit.clear()
            written = 0
            try:
                await asyncio.to_thread(self._ensure_schema)
                # Chunk by chunk, each its own transaction: a failure requeues only the rest.
                while usage:
                    chunk = usage[:_CHUNK]
                    await asyncio.to_thread(self._store.write_usage, chunk)
                    usage = usage[len(chunk) :]
                    written += len(chunk)
                    self._counts["usage_written"] += len(chunk)
                while audit:
                    chunk = audit[:_CHUNK]
                    await asyncio.to_thread(self._store.write_audit, chunk)
                    audit = audit[len(chunk) :]
                    written += len(chunk)
                    self._counts["audit_written"] += len(chunk)
            finally:
                # Whatever did not reach the store goes back in front, to be tried again.
                if usage or audit:
                    self._counts["failed_flushes"] += 1
                    self._requeue(usage, audit)
            return written

    async def drain(self, timeout_s: float = 30.0) -> int:
        """Write everything buffered, retrying until done or `timeout_s`; for a graceful stop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        written = 0
        while True:
            try:
                written += await self.flush()
            except Exception as exc:
                if loop.time() >= deadline:
                    raise RuntimeError(
                        f"drain gave up after {timeout_s:.0f} s with"
                        f" {len(self._usage) + len(self._audit)} records unwritten: {exc!r}"
                    ) from exc
                await asyncio.sleep(0.2)
                continue
            if not self._usage and not self._audit:
                return written

    async def stats(self) -> dict[str, int]:
        """Counters: written, pending, dropped (buffer full), failed flushes."""
        return self._counts | {"pending": len(self._usage) + len(self._audit)}

    # ------------------------------------------------------------------ internals

    def _ensure_schema(self) -> None:
        if not self._migrated:
            self._store.migrate()
            self._migrated = True

    def _requeue(self, usage: list[UsageRecord], audit: list[AuditEvent]) -> None:
        for queue, items in ((self._usage, usage), (self._audit, audit)):
            if not items:
                continue
            newer = list(queue)
            queue.clear()
            # When the backlog overflows, the oldest records are the ones given up.
            self._counts["dropped"] += _extend(queue, [*items, *newer])

    def _start_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval_s)
            if self._usage or self._audit:
                await self._flush_quietly()

    async def _flush_quietly(self) -> None:
        try:
            await self.flush()
        except Exception:
            # Retried every interval while the database is away: say so every 30 s, not 2x/s.
            now = time.monotonic()
            if now - self._failure_logged_at >= 30.0:
                self._failure_logged_at = now
                log.exception(
                    "usage writer: writing to the store failed; %d records kept for the next try",
                    len(self._usage) + len(self._audit),
                )


def _extend(queue: deque[Any], items: Sequence[Any]) -> int:
    """Append to a bounded deque; returns how many old items fell off the front."""
    room = (queue.maxlen or len(queue) + len(items)) - len(queue)
    queue.extend(items)
    return max(0, len(items) - room)


def get_or_create_usage_writer(
    store_url: str, *, name: str = WRITER_NAME, namespace: str = NAMESPACE
) -> ActorHandle:
    """The cluster's usage writer, started (detached) by the first caller."""
    return UsageWriter.options(
        name=name, namespace=namespace, lifetime="detached", get_if_exists=True
    ).remote(store_url)


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
