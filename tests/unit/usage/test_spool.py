"""The spool: batches on disk before they are acknowledged, replayed after a crash."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.store import AuditEvent, UsageRecord
from gateway.usage.spool import Spool, SpoolBusyError

AT = datetime(2026, 12, 1, 9, 30, 15, 123456, tzinfo=UTC)


def records(prefix: str, n: int) -> list[UsageRecord | AuditEvent]:
    usage = [
        UsageRecord(request_id=f"{prefix}-{i}", at=AT, tenant="acme", flags=["x"], cost_usd=0.1)
        for i in range(n)
    ]
    return [*usage, AuditEvent(request_id=f"{prefix}-a", at=AT, action="chat", detail={"k": 1})]


def test_appended_batches_come_back_whole_after_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(records("a", 3))
    spool.append(records("b", 2))
    spool.close()  # a crash leaves the open segment as it is

    again = Spool(tmp_path)
    (segment,) = again.left_over()
    assert again.read(segment) == [*records("a", 3), *records("b", 2)]
    again.close()


def test_sealed_segments_are_handed_over_and_removed_once_stored(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert spool.seal() is None
    spool.append(records("a", 2))
    first = spool.seal()
    spool.append(records("b", 1))
    second = spool.seal()
    assert first is not None and second is not None and first.seq < second.seq
    assert first.records == records("a", 2)
    spool.remove(first)
    spool.close()

    again = Spool(tmp_path)
    assert [s.path for s in again.left_over()] == [second.path]
    # New segments continue the numbering: replay order is arrival order.
    again.append(records("c", 1))
    third = again.seal()
    assert third is not None and third.seq > second.seq
    again.close()


def test_a_torn_last_line_is_skipped_and_the_rest_replayed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(records("a", 2))
    spool.close()
    (path,) = tmp_path.glob("*.jsonl")
    with open(path, "ab") as handle:
        handle.write(b'{"kind": "usage", "record": {"request_id": "torn", "at": "2026-')

    again = Spool(tmp_path)
    (segment,) = again.left_over()
    assert again.read(segment) == records("a", 2)
    again.close()


def test_a_writer_killed_mid_append_leaves_a_readable_spool(tmp_path: Path) -> None:
    """A process appending in a loop is killed with SIGKILL; every batch it finished is back."""
    script = textwrap.dedent(
        f"""
        import sys
        from datetime import datetime, timezone
        from pathlib import Path
        from gateway.store import UsageRecord
        from gateway.usage.spool import Spool
        spool = Spool(Path({str(tmp_path)!r}))
        at = datetime.now(timezone.utc)
        for batch in range(100_000):
            spool.append([UsageRecord(request_id=f"{{batch}}-{{i}}", at=at, tenant="t" * 500)
                          for i in range(50)])
            print(batch, flush=True)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if int(line) >= 30:
            break
    process.kill()
    process.wait()
    acknowledged = int(line)

    spool = Spool(tmp_path)
    replayed = [r for s in spool.left_over() for r in spool.read(s)]
    spool.close()
    ids = {r.request_id for r in replayed}
    assert all(f"{b}-{i}" in ids for b in range(acknowledged + 1) for i in range(50))
    assert len(ids) == len(replayed)


def test_one_spool_directory_has_one_owner(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    with pytest.raises(SpoolBusyError):
        Spool(tmp_path)
    spool.close()
    Spool(tmp_path).close()
