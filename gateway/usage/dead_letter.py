"""Records the store refuses (a value too long, out of range, malformed): kept aside in a
dated JSON-lines file with the reason, so one bad record never blocks the rest."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from gateway.usage.codec import Record, encode, kind_of


class DeadLetter:
    """`<directory>/<kind>-<YYYY-MM-DD>.jsonl`, one refused record a line, fsync'd."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self.count = 0

    def put(self, record: Record, reason: str) -> Path:
        """Keep `record` aside with why the store refused it; returns the file it went to."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        path = self.directory / f"{kind_of(record)}-{day}.jsonl"
        line = encode(record, reason=reason[:2000], refused_at=datetime.now(UTC))
        with self._lock, open(path, "ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
            self.count += 1
        return path
