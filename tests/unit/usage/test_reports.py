"""Usage reports as pandas DataFrames, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.store import Store, UsageRecord
from gateway.usage.reports import parse_by, parse_time, usage_frame

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)


@pytest.fixture
def billed(store: Store) -> Store:
    store.write_usage(
        [
            UsageRecord(
                request_id="1",
                at=T0,
                tenant="acme",
                key_id="k1",
                model="fast",
                provider="sim",
                prompt_tokens=10,
                completion_tokens=5,
                cost_usd=0.5,
            ),
            UsageRecord(
                request_id="2",
                at=T0,
                tenant="acme",
                key_id="k2",
                model="smart",
                provider="sim",
                prompt_tokens=1,
                cost_usd=0.25,
            ),
            UsageRecord(
                request_id="3",
                at=T0.replace(day=2),
                tenant="globex",
                key_id="k3",
                model="fast",
                provider="openai",
                cost_usd=1.0,
            ),
        ]
    )
    return store


def test_a_frame_of_totals_per_group(billed: Store) -> None:
    frame = usage_frame(billed)
    assert list(frame.columns[:4]) == ["tenant", "model", "requests", "errors"]
    assert frame["requests"].sum() == 3
    assert frame.set_index(["tenant", "model"]).loc[("acme", "fast"), "total_tokens"] == 15
    by_day = usage_frame(billed, by="day", since="2026-12-02")
    assert by_day.to_dict("records")[0]["day"] == "2026-12-02"
    assert usage_frame(billed, by=["key"], tenant="acme")["key_id"].tolist() == ["k1", "k2"]
    empty = usage_frame(billed, tenant="nobody")
    assert empty.empty and "cost_usd" in empty.columns


def test_a_frame_of_raw_records_from_a_url(billed: Store) -> None:
    url = billed.url.render_as_string(hide_password=False)
    frame = usage_frame(url, by=(), model="fast")
    assert sorted(frame["request_id"]) == ["1", "3"]
    assert {"latency_ms", "attempts", "overhead_ms", "flags"} <= set(frame.columns)


def test_parsing_names_what_is_wrong() -> None:
    assert parse_by("tenant, day,tenant") == ("tenant", "day")
    assert parse_by(["key_id", "model"]) == ("key", "model")
    assert parse_by(None) == ("tenant", "model")
    with pytest.raises(ValueError, match="cannot group usage by 'week'"):
        parse_by("week")
    assert parse_time("2026-12-01", "since") == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_time("2026-12-01T10:00+01:00", "since") == T0
    with pytest.raises(ValueError, match="'until' must be an ISO date"):
        parse_time("tomorrow", "until")
