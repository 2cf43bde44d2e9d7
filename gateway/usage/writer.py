"""Usage and audit records on their way to the store: spooled first, then written in chunks,
refused records dead-lettered, keys' last-used times moved forward. No Ray here; the
`UsageWriter` actor in `deployments/` drives one `RecordWriter`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from gateway.store import AuditEvent, Store, UsageRecord
from gateway.usage.codec import Record
from gateway.usage.dead_letter import DeadLetter
from gateway.usage.spool import Segment, Spool

log = logging.getLogger("llmgw.usage")

# One transaction's worth when a backlog built up while the database was away.
CHUNK = 2_000
# Records kept in memory across segments waiting for the store; past it they are re-read.
KEEP_IN_MEMORY = 100_000


def refused(exc: BaseException) -> bool:
    """True when the store refused the records themselves (a value too long, out of range,
    missing), False when it could not be reached or is not ready: then they wait."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    if isinstance(exc, DBAPIError):
        return False  # connection, locking, a missing table: nothing to do with the records
    # A value the column type could not take before it reached the driver.
    return isinstance(exc, StatementError | ValueError | TypeError | OverflowError)


class RecordWriter:
    """Takes batches (durable once `accept` returns) and writes them to the store in the
    background, oldest first, each at least once and billed once."""

    def __init__(
        self,
        store: Store,
        spool: Spool,
        dead_letter: DeadLetter,
        *,
        interval_s: float = 0.5,
        keep_in_memory: int = KEEP_IN_MEMORY,
    ) -> None:
        self.store = store
        self.spool = spool
        self.dead_letter = dead_letter
        self.interval_s = interval_s
        self._keep_in_memory = keep_in_memory
        self._segments: deque[Segment] = deque(spool.left_over())
        self._in_memory = 0
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._migrated = False
        self._failure_logged_at = float("-inf")
        self.counts = {
            "accepted": 0,
            "usage_written": 0,
            "usage_duplicates": 0,
            "audit_written": 0,
            "dead_lettered": 0,
            "failed_flushes": 0,
            "replayed_segments": len(self._segments),
        }
        if self._segments:
            log.warning(
                "usage writer: %d spool segments left from before are replayed",
                len(self._segments),
            )

    # ------------------------------------------------------------------ taking records

    def accept(self, records: Sequence[Record]) -> None:
        """Spool `records` (fsync'd): when this returns, a crash no longer loses them."""
        self.spool.append(records)
        self.counts["accepted"] += len(records)

    def pending_segments(self) -> int:
        return len(self._segments) + (1 if self.spool.has_open_segment() else 0)

    # ------------------------------------------------------------------ writing

    def flush(self) -> int:
        """Write every spooled record to the store; returns how many were handled. Raises
        (leaving the rest spooled, in order) when the store cannot be reached."""
        with self._flushing:
            segment = self.spool.seal()
            if segment is not None:
                self._queue(segment)
            handled = 0
            try:
                if self._segments:
                    self._ensure_schema()
                while self._segments:
                    segment = self._segments[0]
                    handled += self._write_segment(segment)
                    self.spool.remove(segment)
                    self._segments.popleft()
                    self._in_memory -= len(segment.records or ())
            except Exception:
                self.counts["failed_flushes"] += 1
                raise
            return handled

    def drain(self, timeout_s: float = 30.0) -> int:
        """Flush, retrying while the store is away, until everything is written or `timeout_s`
        passes (then raises; what is left stays spooled for the next start)."""
        deadline = time.monotonic() + timeout_s
        handled = 0
        while True:
            try:
                handled += self.flush()
            except Exception as exc:
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"drain gave up after {timeout_s:.0f} s with"
                        f" {self.pending_segments()} spool segments unwritten: {exc!r}"
                    ) from exc
                time.sleep(0.2)
                continue
            if not self.pending_segments():
                return handled

    # ------------------------------------------------------------------ background

    def start(self) -> None:
        """Flush every `interval_s` in a background thread (and at once on `wake()`)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="llmgw-usage-writer", daemon=True
            )
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the thread, then drain what is left (graceful stop)."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        try:
            self.drain(timeout_s)
        finally:
            self.spool.close()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stopped.is_set():
                return
            try:
                self.flush()
            except Exception:
                # Retried every interval while the database is away: say so every 30 s.
                now = time.monotonic()
                if now - self._failure_logged_at >= 30.0:
                    self._failure_logged_at = now
                    log.exception(
                        "usage writer: the store is unreachable; %d spool segments wait",
                        self.pending_segments(),
                    )

    # ------------------------------------------------------------------ internals

    def _queue(self, segment: Segment) -> None:
        count = len(segment.records or ())
        if self._in_memory + count > self._keep_in_memory:
            segment.records = None  # read back from disk when its turn comes
        else:
            self._in_memory += count
        self._segments.append(segment)

    def _ensure_schema(self) -> None:
        if not self._migrated:
            self.store.migrate()
            self._migrated = True

    def _write_segment(self, segment: Segment) -> int:
        records = segment.records if segment.records is not None else self.spool.read(segment)
        start = segment.done
        while segment.done < len(records):
            chunk = records[segment.done : segment.done + CHUNK]
            usage = [r for r in chunk if isinstance(r, UsageRecord)]
            audit = [r for r in chunk if isinstance(r, AuditEvent)]
            written = self._bisect(self.store.write_usage, usage)
            self.counts["usage_written"] += written
            self.counts["usage_duplicates"] += len(usage) - written
            self.counts["audit_written"] += self._bisect(self.store.write_audit, audit)
            self._touch_keys(usage)
            segment.done += len(chunk)
        return segment.done - start

    def _bisect(self, write: Callable[[Any], int], records: list[Any]) -> int:
        """Write `records`; a refused batch is halved until the refused records are alone,
        and those go to the dead-letter file."""
        if not records:
            return 0
        try:
            return write(records)
        except Exception as exc:
            if not refused(exc):
                raise
            if len(records) == 1:
                path = self.dead_letter.put(records[0], _reason(exc))
                self.counts["dead_lettered"] += 1
                log.error("usage writer: the store refused a record, kept in %s: %s", path, exc)
                return 0
        middle = len(records) // 2
        return self._bisect(write, records[:middle]) + self._bisect(write, records[middle:])

    def _touch_keys(self, usage: list[UsageRecord]) -> None:
        newest: dict[str, datetime] = {}
        for record in usage:
            if record.key_id and (record.key_id not in newest or record.at > newest[record.key_id]):
                newest[record.key_id] = record.at
        try:
            self.store.touch_keys(newest)
        except Exception as exc:
            if not refused(exc):
                raise
            log.warning("usage writer: keys' last-used times not updated: %r", exc)


def _reason(exc: BaseException) -> str:
    original = getattr(exc, "orig", None)
    return f"{type(exc).__name__}: {original or exc}".splitlines()[0]
