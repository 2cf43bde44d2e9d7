"""What the registry publishes beside its providers and models: live call statistics and
providers' health, under a version of their own (`stats_version`) that moves without a
registry change, and at most once per interval however fast samples arrive.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Iterable, Mapping

from gateway.registry.snapshot import ModelStats, ProviderHealth
from gateway.registry.stats import CallSample, CallStats


class LiveStats:
    """Models' call statistics and providers' health, with the version replicas watch them by."""

    def __init__(self, clock: Callable[[], float] = time.time, interval_s: float = 1.0) -> None:
        self._clock = clock
        self._calls = CallStats()
        self.stats: dict[str, ModelStats] = {}
        self.health: dict[str, ProviderHealth] = {}
        # Seeded from the wall clock in microseconds: a restarted actor starts above every
        # version the one before it published (each publish adds 1 or jumps to the clock), so
        # a replica never mistakes new stats for old ones it cached under the same version.
        self.version = _micros(clock())
        self._interval_s = interval_s
        self._published_at = float("-inf")
        self._dirty = False

    def record(self, samples: Iterable[CallSample], models: Container[str]) -> bool:
        """Add call samples; True when this published new stats (a new `version`)."""
        if self._calls.add(samples):
            self._dirty = True
        return self.refresh(models)

    def set_health(self, health: Mapping[str, ProviderHealth], providers: Container[str]) -> bool:
        """Publish providers' probe results with the live statistics; True when published."""
        health = {name: h for name, h in health.items() if name in providers}
        if health == self.health:
            return False
        self.health = health
        self.version = max(self.version + 1, _micros(self._clock()))
        return True

    def refresh(self, models: Container[str], now: float | None = None) -> bool:
        """Publish new stats of `models` when samples arrived or aged out, at most once per
        interval. Call it periodically: stats change as old calls leave the window even with
        no traffic."""
        now = self._clock() if now is None else now
        if not (self._dirty or self._calls.expires_by(now)):
            return False
        if now - self._published_at < self._interval_s:
            return False
        self._published_at = now
        self._dirty = False
        stats = {m: s for m, s in self._calls.compute(now).items() if m in models}
        if stats == self.stats:
            return False
        self.stats = stats
        self.version = max(self.version + 1, _micros(now))
        return True

    def forget(self, model: str) -> None:
        """Drop a removed model's calls."""
        self._calls.forget(model)

    def keep_only(self, models: Container[str]) -> None:
        """Drop the published stats of models no longer registered (no new version)."""
        self.stats = {m: s for m, s in self.stats.items() if m in models}


def _micros(seconds: float) -> int:
    """A stats version from a clock reading: whole microseconds."""
    return int(seconds * 1_000_000)
