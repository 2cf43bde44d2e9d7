"""The record writer on SQLite and PostgreSQL: spooled before acknowledged, written once,
refused records dead-lettered without blocking the rest, a store outage waited out."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from gateway.store import AuditEvent, Store, UsageRecord
from gateway.usage.dead_letter import DeadLetter
from gateway.usage.spool import Spool
from gateway.usage.writer import RecordWriter

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def usage(request_id: str, **fields: Any) -> UsageRecord:
    defaults: dict[str, Any] = {"at": T0, "tenant": "acme", "cost_usd": 0.01}
    return UsageRecord(request_id=request_id, **(defaults | fields))


class Outage:
    """Makes a store unreachable (as a dropped connection does) until restored."""

    def __init__(self, store: Store) -> None:
        self.down = False
        real = store._writing

        @contextmanager
        def writing() -> Iterator[Connection]:
            if self.down:
                raise OperationalError("INSERT", {}, ConnectionError("server closed"))
            with real() as conn:
                yield conn

        store._writing = writing  # type: ignore[method-assign]


def writer_for(store: Store, tmp_path: Path, **options: Any) -> RecordWriter:
    return RecordWriter(
        store, Spool(tmp_path / "spool"), DeadLetter(tmp_path / "dead-letter"), **options
    )


def billed(store: Store) -> tuple[int, float]:
    (total,) = store.usage_summary(group_by=[]) or [None]
    return (total.requests, round(total.cost_usd, 6)) if total else (0, 0.0)


def test_records_are_written_once_even_when_sent_twice(store: Store, tmp_path: Path) -> None:
    writer = writer_for(store, tmp_path)
    batch = [usage(f"r{i}") for i in range(10)]
    writer.accept([*batch, AuditEvent(request_id="r0", action="chat")])
    writer.accept(batch)  # the sender retried: at least once
    assert writer.flush() == 21
    assert billed(store) == (10, 0.1)
    assert len(store.list_audit()) == 1
    assert writer.counts["usage_duplicates"] == 10
    assert not list((tmp_path / "spool").glob("*.jsonl"))  # consumed segments are deleted
    writer.spool.close()


def test_a_crash_before_writing_is_replayed_on_the_next_start(store: Store, tmp_path: Path) -> None:
    writer = writer_for(store, tmp_path)
    writer.accept([usage("a"), usage("b")])
    writer.flush()
    writer.accept([usage("c")])
    writer.spool.close()  # killed: "c" was acknowledged, never written

    again = writer_for(store, tmp_path)
    assert again.counts["replayed_segments"] == 1
    again.drain(timeout_s=5)
    assert sorted(r.request_id for r in store.list_usage()) == ["a", "b", "c"]
    again.spool.close()


def test_a_crash_after_writing_replays_without_billing_twice(store: Store, tmp_path: Path) -> None:
    writer = writer_for(store, tmp_path)
    writer.accept([usage("a"), AuditEvent(request_id="a", action="chat")])
    segment = writer.spool.seal()
    assert segment is not None
    store.write_usage([usage("a")])  # written, then killed before the segment was removed
    store.write_audit([AuditEvent(request_id="a", action="chat")])
    writer.spool.close()

    again = writer_for(store, tmp_path)
    again.drain(timeout_s=5)
    assert billed(store) == (1, 0.01)
    assert len(store.list_audit()) == 1
    again.spool.close()


def test_refused_records_go_to_the_dead_letter_file_and_the_rest_is_written(
    store: Store, tmp_path: Path
) -> None:
    writer = writer_for(store, tmp_path)
    good = [usage(f"ok{i}") for i in range(40)]
    bad = [
        usage("no-status", status=None),  # NOT NULL
        usage("naive", at=datetime(2026, 12, 1)),  # the store takes aware times only
    ]
    if store.dialect == "postgresql":
        bad.append(usage("x" * 65))  # longer than the column (SQLite does not check)
    records = [*good[:13], bad[0], *good[13:30], *bad[1:], *good[30:]]
    writer.accept(records)
    writer.flush()
    assert billed(store) == (40, 0.4)
    (dead_file,) = (tmp_path / "dead-letter").glob("usage-*.jsonl")
    dead = [orjson.loads(line) for line in dead_file.read_bytes().splitlines()]
    assert [d["record"]["request_id"] for d in dead] == [b.request_id for b in bad]
    assert all(d["reason"] for d in dead)
    assert writer.counts["dead_lettered"] == len(bad)
    assert not list((tmp_path / "spool").glob("*.jsonl"))
    writer.spool.close()


def test_an_outage_keeps_records_spooled_in_order_until_the_store_is_back(
    store: Store, tmp_path: Path
) -> None:
    outage = Outage(store)
    writer = writer_for(store, tmp_path, keep_in_memory=5)
    writer.accept([usage("before")])
    writer.flush()
    outage.down = True
    for i in range(6):
        writer.accept([usage(f"during{i}-{j}") for j in range(3)])
        with pytest.raises(OperationalError):
            writer.flush()
    assert len(list((tmp_path / "spool").glob("*.jsonl"))) == 6
    assert writer.counts["failed_flushes"] == 6
    outage.down = False
    writer.accept([usage("after")])
    assert writer.drain(timeout_s=5) == 19
    assert billed(store) == (20, 0.2)
    assert not list((tmp_path / "spool").glob("*.jsonl"))
    writer.spool.close()


def test_keys_last_used_time_moves_forward(store: Store, tmp_path: Path) -> None:
    key = store.add_key("h" * 64, prefix="sk-llmgw-abc", name="ci", tenant="acme")
    writer = writer_for(store, tmp_path)
    writer.accept(
        [
            usage("1", key_id=key.id, at=T0 + timedelta(minutes=5)),
            usage("2", key_id=key.id, at=T0),
            usage("3", key_id="key_gone"),
        ]
    )
    writer.flush()
    stored = store.get_key(key.id)
    assert stored is not None and stored.last_used_at == T0 + timedelta(minutes=5)
    writer.spool.close()


def test_the_background_thread_writes_and_stop_drains(store: Store, tmp_path: Path) -> None:
    writer = writer_for(store, tmp_path, interval_s=0.05)
    writer.start()
    writer.accept([usage(f"bg{i}") for i in range(5)])
    writer.accept([usage("last")])
    writer.stop(timeout_s=5)
    assert billed(store) == (6, 0.06)
