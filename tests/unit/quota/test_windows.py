"""Quota windows: UTC calendar periods, their ids, and what a refusal's Retry-After says."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.quota.ledger import Ask, LedgerKey, QuotaLedger
from gateway.quota.windows import WindowClock, window_at


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("period", "now", "window", "left"),
    [
        ("minute", "2026-12-03T07:15:42", "2026-12-03T07:15", 18),
        ("day", "2026-12-03T23:00:00", "2026-12-03", 3600),
        ("month", "2026-12-31T23:59:30", "2026-12", 30),
        ("month", "2027-02-28T00:00:00", "2027-02", 86400),
    ],
)
def test_windows_are_utc_calendar_periods(period: str, now: str, window: str, left: float) -> None:
    found = window_at(period, at(now))  # type: ignore[arg-type]
    assert found.id == window
    assert found.seconds_left(at(now)) == pytest.approx(left)


def test_a_window_ends_where_the_next_begins() -> None:
    for period in ("minute", "day", "month"):
        first = window_at(period, at("2026-12-31T23:59:59"))  # type: ignore[arg-type]
        second = window_at(period, first.end)  # type: ignore[arg-type]
        assert second.start == first.end and second.id != first.id


def test_window_clock_moves_on_at_the_boundary() -> None:
    clock = WindowClock()
    before = clock.window("minute", at("2026-12-03T07:15:59.999"))
    assert clock.window("minute", at("2026-12-03T07:15:00")) is before
    assert clock.window("minute", at("2026-12-03T07:16:00")).id == "2026-12-03T07:16"


def test_unknown_period_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="week"):
        window_at("week", 0.0)  # type: ignore[arg-type]


def test_a_reset_never_loses_spend_recorded_before_it() -> None:
    ledger = QuotaLedger()
    today = LedgerKey("tenant:acme", "usd", window_at("day", at("2026-12-03T23:59:59")).id)
    tomorrow = LedgerKey("tenant:acme", "usd", window_at("day", at("2026-12-04T00:00:01")).id)
    assert ledger.lease([Ask(today, 1.0, True, 0.9)])[0].amount >= 0.9
    # The new day starts from zero...
    assert ledger.lease([Ask(tomorrow, 1.0, True, 1.0)])[0].amount == pytest.approx(1.0)
    # ...and the day before still holds what was spent in it, settled after midnight too.
    ledger.give_back([])
    assert ledger.out(today) >= 0.9
    assert ledger.lease([Ask(today, 1.0, True, 0.2)])[0].refused
