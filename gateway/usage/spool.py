"""A local, append-only spool of records on their way to the store.

The usage writer appends every batch it receives here, fsync'd, before it acknowledges it; a
batch then lives in a segment file until all of it is in the store, and the segment is
deleted. Segments left behind by a crash (or while the database was away) are replayed when
the writer starts again. A torn last line, from a crash in the middle of an append, is skipped:
the batch it belonged to was never acknowledged, so its sender still has it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gateway.usage.codec import Record, decode, encode

log = logging.getLogger("llmgw.usage")

_SUFFIX = ".jsonl"


class SpoolBusyError(RuntimeError):
    """Another live writer holds this spool directory."""


@dataclass
class Segment:
    """One spool file and, when still in memory, its records; `done` counts the leading
    records already handled (in the store or dead-lettered)."""

    path: Path
    records: list[Record] | None = None
    done: int = 0

    @property
    def seq(self) -> int:
        return int(self.path.stem)


class Spool:
    """Segments of fsync'd JSON lines in one directory, owned by one writer at a time."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory = directory
        self._owner = open(directory / ".lock", "a")  # noqa: SIM115 - held for the spool's life
        try:
            fcntl.flock(self._owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._owner.close()
            raise SpoolBusyError(f"{directory} is in use by another usage writer") from None
        self._lock = threading.Lock()
        self._left_over = sorted(self._segment_paths(), key=lambda p: int(p.stem))
        self._next = max((int(p.stem) for p in self._left_over), default=0) + 1
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._records: list[Record] = []

    def left_over(self) -> list[Segment]:
        """Segments found on disk when the spool was opened: not yet known to be stored."""
        return [Segment(path) for path in self._left_over]

    def append(self, records: Sequence[Record]) -> None:
        """Write `records` to the open segment and fsync; returns once they are on disk."""
        if not records:
            return
        data = b"".join(encode(r) for r in records)
        with self._lock:
            if self._file is None:
                self._path = self.directory / f"{self._next:012d}{_SUFFIX}"
                self._next += 1
                self._file = open(self._path, "ab")  # noqa: SIM115 - closed by seal()
                _sync_directory(self.directory)
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._records.extend(records)

    def has_open_segment(self) -> bool:
        """Whether records were appended since the last `seal()`."""
        return self._file is not None

    def seal(self) -> Segment | None:
        """Close the open segment and hand it over with its records; None when empty."""
        with self._lock:
            if self._file is None or self._path is None:
                return None
            self._file.close()
            segment = Segment(self._path, self._records)
            self._file, self._path, self._records = None, None, []
            return segment

    def read(self, segment: Segment) -> list[Record]:
        """A segment's records from disk; lines that do not decode (a torn write) are skipped."""
        records: list[Record] = []
        with open(segment.path, "rb") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    records.append(decode(line))
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("spool %s line %d skipped: %r", segment.path, number, exc)
        return records

    def remove(self, segment: Segment) -> None:
        """Delete a segment whose every record is handled."""
        segment.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Close the open segment (kept on disk) and give up the directory."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
        self._owner.close()

    def _segment_paths(self) -> list[Path]:
        return [p for p in self.directory.glob(f"*{_SUFFIX}") if p.stem.isdigit() and p.is_file()]


def _sync_directory(directory: Path) -> None:
    """Make a new file's directory entry durable too."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
