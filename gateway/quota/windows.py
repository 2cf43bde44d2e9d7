"""Quota windows: UTC calendar periods named by their start, as the ledger keys them.

A minute is a clock minute (`2026-12-03T07:15`), a day a UTC day (`2026-12-03`), a month a
calendar month (`2026-12`). Spend is kept per window, so a new window starts from zero and the
one before keeps what was recorded in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.tenancy.access import QuotaPeriod

_FORMATS: dict[str, str] = {"minute": "%Y-%m-%dT%H:%M", "day": "%Y-%m-%d", "month": "%Y-%m"}


@dataclass(frozen=True, slots=True)
class Window:
    """One period's window: its id and when it starts and ends (epoch seconds, end exclusive)."""

    id: str
    start: float
    end: float

    def seconds_left(self, now: float) -> float:
        """Seconds until the window ends (what a refusal's Retry-After says)."""
        return max(0.0, self.end - now)


def window_at(period: QuotaPeriod, now: float) -> Window:
    """The window of `period` that holds `now` (epoch seconds)."""
    at = datetime.fromtimestamp(now, UTC)
    if period == "minute":
        start = at.replace(second=0, microsecond=0)
        end = start + timedelta(minutes=1)
    elif period == "day":
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)
    elif period == "month":
        start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else (start.replace(month=start.month + 1))
        )
    else:
        raise ValueError(f"unknown quota period '{period}': expected minute, day or month")
    return Window(start.strftime(_FORMATS[period]), start.timestamp(), end.timestamp())


class WindowClock:
    """The current window of each period, recomputed only when one ends (the request path
    asks for it once per quota)."""

    def __init__(self) -> None:
        self._current: dict[str, Window] = {}

    def window(self, period: QuotaPeriod, now: float) -> Window:
        """The window of `period` holding `now`."""
        current = self._current.get(period)
        if current is None or not current.start <= now < current.end:
            current = self._current[period] = window_at(period, now)
        return current
