"""Usage and audit in the store, on SQLite and PostgreSQL: idempotent writes and reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.store import AuditEvent, Store, UsageRecord

T0 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)


def usage(request_id: str, **fields: object) -> UsageRecord:
    defaults: dict[str, object] = {
        "tenant": "acme",
        "key_id": "key_a",
        "model": "fast",
        "provider": "sim",
        "at": T0,
    }
    return UsageRecord(request_id=request_id, **(defaults | fields))


def test_every_usage_field_round_trips(store: Store) -> None:
    record = usage(
        "req-full",
        upstream="fast-v1",
        prompt_tokens=10,
        completion_tokens=5,
        cached_tokens=2,
        cost_usd=0.00012,
        latency_ms=41.5,
        ttft_ms=12.25,
        stream=True,
        endpoint="chat",
        use_case="summarization",
        strategy="cost",
        attempts=2,
        fallbacks=1,
        provider_ms=30.0,
        overhead_ms=11.5,
        flags=["budget_exceeded:tenant:acme:day"],
    )
    store.write_usage([record])
    assert store.list_usage() == [record]


def test_a_batch_written_twice_bills_once(store: Store) -> None:
    batch = [usage(f"req-{i}", prompt_tokens=10, cost_usd=0.5) for i in range(5)]
    assert store.write_usage(batch) == 5
    assert store.write_usage(batch) == 0
    assert store.write_usage([*batch[3:], usage("req-new", cost_usd=0.5)]) == 1
    (total,) = store.usage_summary(group_by=[])
    assert (total.requests, total.prompt_tokens, total.cost_usd) == (6, 50, pytest.approx(3.0))


def test_a_replayed_audit_batch_is_stored_once(store: Store) -> None:
    events = [AuditEvent(request_id=f"req-{i}", action="chat", tenant="acme") for i in range(3)]
    assert store.write_audit(events) == 3
    assert store.write_audit([*events, AuditEvent(request_id="req-9", action="chat")]) == 1
    # Events without a request id (none today) are never taken for duplicates.
    assert store.write_audit([AuditEvent(action="x"), AuditEvent(action="x")]) == 2
    assert len(store.list_audit(limit=100)) == 6


def test_audit_filters_by_tenant_time_and_action(store: Store) -> None:
    store.write_audit(
        [
            AuditEvent(request_id="1", action="chat", tenant="acme", at=T0),
            AuditEvent(request_id="2", action="admin", tenant="acme", at=T0 + timedelta(hours=1)),
            AuditEvent(request_id="3", action="chat", tenant="globex", at=T0 + timedelta(hours=2)),
        ]
    )
    assert [e.request_id for e in store.list_audit()] == ["3", "2", "1"]
    assert [e.request_id for e in store.list_audit(tenant="acme")] == ["2", "1"]
    since = T0 + timedelta(minutes=30)
    assert [e.request_id for e in store.list_audit(since=since)] == ["3", "2"]
    assert [e.request_id for e in store.list_audit(action="admin")] == ["2"]
    assert [e.request_id for e in store.list_audit(limit=1)] == ["3"]


@pytest.fixture
def billed(store: Store) -> Store:
    store.write_usage(
        [
            usage("1", prompt_tokens=10, completion_tokens=1, cost_usd=0.5, latency_ms=10),
            # 23:30 UTC on the 30th is the 1st of December in Tokyo: days are UTC days.
            usage(
                "2",
                at=datetime(2026, 12, 1, 8, 30, tzinfo=timezone(timedelta(hours=9))),
                prompt_tokens=20,
                cost_usd=0.25,
                latency_ms=30,
            ),
            usage("3", at=T0 + timedelta(hours=3), key_id="key_b", model="smart", status=500),
            usage("4", tenant="globex", key_id="key_g", provider="openai", model="gpt", cost_usd=2),
        ]
    )
    return store


def test_usage_report_groups_by_each_dimension(billed: Store) -> None:
    rows = billed.usage_report()
    assert [(r["tenant"], r["model"], r["requests"]) for r in rows] == [
        ("acme", "fast", 2),
        ("acme", "smart", 1),
        ("globex", "gpt", 1),
    ]
    fast = rows[0]
    assert (fast["prompt_tokens"], fast["completion_tokens"], fast["total_tokens"]) == (30, 1, 31)
    assert fast["cost_usd"] == pytest.approx(0.75) and fast["avg_latency_ms"] == 20
    assert rows[1]["errors"] == 1

    by_key = {r["key_id"]: r["requests"] for r in billed.usage_report(by=["key"])}
    assert by_key == {"key_a": 2, "key_b": 1, "key_g": 1}
    by_provider = {r["provider"]: r["cost_usd"] for r in billed.usage_report(by=["provider"])}
    assert by_provider == {"openai": 2.0, "sim": 0.75}
    by_day = {r["day"]: r["requests"] for r in billed.usage_report(by=["day"])}
    assert by_day == {"2026-11-30": 3, "2026-12-01": 1}
    by_tenant_day = billed.usage_report(by=["tenant", "day"])
    assert [(r["tenant"], r["day"]) for r in by_tenant_day] == [
        ("acme", "2026-11-30"),
        ("acme", "2026-12-01"),
        ("globex", "2026-11-30"),
    ]
    with pytest.raises(ValueError, match="cannot group usage by 'colour'"):
        billed.usage_report(by=["colour"])  # type: ignore[list-item]


def test_usage_report_filters(billed: Store) -> None:
    def requests(**filters: object) -> int:
        return sum(r["requests"] for r in billed.usage_report(by=["tenant"], **filters))

    assert requests() == 4
    assert requests(tenant="acme") == 3
    assert requests(key_id="key_b") == 1
    assert requests(model="fast") == 2
    assert requests(since=T0 + timedelta(hours=1)) == 2
    assert requests(until=T0 + timedelta(hours=1)) == 2
    assert requests(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2)) == 1
    assert billed.usage_report(tenant="nobody") == []
    assert billed.list_usage(key_id="key_b", until=T0 + timedelta(days=1))[0].request_id == "3"
