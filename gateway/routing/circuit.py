"""Circuit breakers per (provider, model): stop sending traffic to a model that keeps failing.

closed -> open after `failure_threshold` consecutive failures, or when the error rate over the
last `window_s` reaches `error_rate` with at least `min_requests` calls; open for `open_s`; then
half-open, letting exactly one probe through: its success closes the circuit, its failure
re-opens it. A call holds the permit `acquire` gave it, so only the probe's own outcome
decides, never a late one from a call started earlier. Every method takes `now` from an
injectable clock so tests never sleep.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from gateway.config import CircuitConfig
from gateway.observability.metrics import metrics

if TYPE_CHECKING:
    from gateway.registry.snapshot import RegistrySnapshot

State = Literal["closed", "open", "half_open"]
CLOSED: State = "closed"
OPEN: State = "open"
HALF_OPEN: State = "half_open"

Clock = Callable[[], float]

# The error-rate window is kept as this many time buckets, so memory stays bounded at any
# request rate (a deque of every call would hold 30,000 entries at 1,000 req/s).
_BUCKETS = 20


class CircuitBreaker:
    """One model's circuit: `allow` before a call, `record` its outcome after."""

    def __init__(
        self,
        config: CircuitConfig,
        clock: Clock = time.monotonic,
        on_change: Callable[[CircuitBreaker], None] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self._on_change = on_change
        self._open = False
        self._opened_at = 0.0
        self._probe_at: float | None = None  # when the half-open probe was let through
        self._probe_permit = 0  # the permit the pending probe holds
        self._permits = 0  # permits handed out so far; each call's is unique
        self._consecutive = 0
        self._bucket_s = config.window_s / _BUCKETS
        self._buckets: deque[list[float]] = deque()  # [bucket start, requests, errors]
        self._requests = 0
        self._errors = 0

    # ------------------------------------------------------------------ state

    def state_at(self, now: float) -> State:
        """The state at time `now`: an open circuit becomes half-open once `open_s` has passed."""
        if not self._open:
            return CLOSED
        return OPEN if now < self._opened_at + self.config.open_s else HALF_OPEN

    @property
    def state(self) -> State:
        return self.state_at(self.clock())

    @property
    def tripped(self) -> bool:
        """Open or half-open: not yet closed again by a successful probe."""
        return self._open

    def available(self, now: float | None = None) -> bool:
        """Whether `allow` would let a call through now, without taking the half-open probe."""
        now = self.clock() if now is None else now
        state = self.state_at(now)
        if state == CLOSED:
            return True
        return state == HALF_OPEN and not self._probe_pending(now)

    def retry_after(self, now: float | None = None) -> float:
        """Seconds until a call may be let through again (0 when it may be now)."""
        now = self.clock() if now is None else now
        state = self.state_at(now)
        if state == OPEN:
            return self._opened_at + self.config.open_s - now
        if state == HALF_OPEN and self._probe_pending(now):
            assert self._probe_at is not None
            return self._probe_at + self.config.open_s - now
        return 0.0

    def _probe_pending(self, now: float) -> bool:
        # A probe whose outcome never came back (its caller died) expires after `open_s`, so a
        # lost probe cannot hold the circuit half-open forever.
        return self._probe_at is not None and now < self._probe_at + self.config.open_s

    # ------------------------------------------------------------------ calls

    def allow(self, now: float | None = None) -> bool:
        """Whether to make a call now; in half-open, True exactly once (the probe)."""
        return self.acquire(now) is not None

    def acquire(self, now: float | None = None) -> int | None:
        """A permit for one call now (pass it to `record`), or None; in half-open, a permit
        exactly once (the probe's)."""
        now = self.clock() if now is None else now
        state = self.state_at(now)
        if state == OPEN or (state == HALF_OPEN and self._probe_pending(now)):
            return None
        self._permits += 1
        if state == HALF_OPEN:
            self._probe_at = now
            self._probe_permit = self._permits
        return self._permits

    def record(self, ok: bool, now: float | None = None, permit: int | None = None) -> None:
        """The outcome of a call that `acquire` (or `allow`) let through.

        With its `permit`, an outcome decides a half-open circuit only if it is the probe's;
        without one, any outcome while the probe is out is taken as the probe's.
        """
        now = self.clock() if now is None else now
        if self._open:
            # Outcomes of calls started before the circuit opened (or before the probe) say
            # nothing new; only the probe's outcome decides.
            if self.state_at(now) == HALF_OPEN and self._probe_at is not None:
                if permit is not None and permit != self._probe_permit:
                    return
                if ok:
                    self._close()
                else:
                    self._trip(now)
            return
        self._count(ok, now)
        self._consecutive = 0 if ok else self._consecutive + 1
        if self._consecutive >= self.config.failure_threshold or self._rate_exceeded():
            self._trip(now)

    # ------------------------------------------------------------------ internals

    def _count(self, ok: bool, now: float) -> None:
        buckets = self._buckets
        horizon = now - self.config.window_s
        # A bucket leaves as soon as its start does: no call counts for longer than window_s
        # (some leave up to one bucket, window_s/20, early).
        while buckets and buckets[0][0] <= horizon:
            _, requests, errors = buckets.popleft()
            self._requests -= int(requests)
            self._errors -= int(errors)
        if not buckets or now >= buckets[-1][0] + self._bucket_s:
            buckets.append([now, 0, 0])
        bucket = buckets[-1]
        bucket[1] += 1
        self._requests += 1
        if not ok:
            bucket[2] += 1
            self._errors += 1

    def _rate_exceeded(self) -> bool:
        if self._requests < self.config.min_requests:
            return False
        return self._errors / self._requests >= self.config.error_rate

    def _trip(self, now: float) -> None:
        was_open = self._open
        self._open = True
        self._opened_at = now
        self._probe_at = None
        if not was_open and self._on_change is not None:
            self._on_change(self)

    def _close(self) -> None:
        self._open = False
        self._probe_at = None
        self._consecutive = 0
        self._buckets.clear()
        self._requests = self._errors = 0
        if self._on_change is not None:
            self._on_change(self)


class CircuitBoard:
    """Every model's circuit breaker, keyed by (provider, model name), created on first use."""

    def __init__(self, config: CircuitConfig, clock: Clock = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}
        # Keys of breakers that are not closed: routing checks only these, so a board where
        # every circuit is closed costs a decision one truth test.
        self.tripped: set[tuple[str, str]] = set()
        # Models of providers whose health probe failed: held open until a probe succeeds.
        self._held: frozenset[tuple[str, str]] = frozenset()
        self._health_seen: object = None

    def get(self, provider: str, model: str) -> CircuitBreaker:
        """The breaker for one model at one provider."""
        key = (provider, model)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(
                self.config, self.clock, lambda changed, key=key: self._changed(key, changed)
            )
            self._breakers[key] = breaker
        return breaker

    def available(self, provider: str, model: str, now: float | None = None) -> bool:
        """Whether the model would take a call now (read-only: never takes a probe)."""
        if (provider, model) not in self.tripped:
            return True
        if (provider, model) in self._held:
            return False
        return self._breakers[(provider, model)].available(now)

    def follow_health(self, snapshot: RegistrySnapshot) -> None:
        """Hold open the circuits of every model of a provider whose last health probe
        failed, so routing skips them before a client's call fails on them; a probe that
        succeeds releases them. Cheap when the snapshot's health has not changed."""
        if snapshot.health is self._health_seen:
            return
        self._health_seen = snapshot.health
        down = snapshot.unhealthy_providers()
        held = frozenset(
            (m.provider, m.name) for m in snapshot.models.values() if m.provider in down
        )
        for key in self._held - held:
            breaker = self._breakers.get(key)
            if breaker is None or not breaker.tripped:
                self.tripped.discard(key)
        self.tripped |= held
        self._held = held

    def why_closed(self, provider: str, model: str, now: float | None = None) -> str:
        """Why the model takes no calls now, in words a client can act on."""
        if (provider, model) in self._held:
            return f"provider '{provider}' failed its last health probe"
        wait = self.retry_after(provider, model, now)
        return f"circuit open after upstream failures, retry in {wait:.1f} s"

    def retry_after(self, provider: str, model: str, now: float | None = None) -> float:
        """Seconds until the model's circuit lets a call through (0 if it does now)."""
        if (provider, model) in self._held:
            return self.config.open_s  # until a health probe succeeds; open_s is a fair guess
        breaker = self._breakers.get((provider, model))
        return 0.0 if breaker is None else breaker.retry_after(now)

    def states(self, now: float | None = None) -> dict[tuple[str, str], State]:
        """The state of every breaker that has seen traffic, e.g. for metrics."""
        now = self.clock() if now is None else now
        return {key: breaker.state_at(now) for key, breaker in self._breakers.items()}

    def _changed(self, key: tuple[str, str], breaker: CircuitBreaker) -> None:
        if breaker.tripped:
            self.tripped.add(key)
        elif key not in self._held:
            self.tripped.discard(key)
        metrics().circuit(key[0], key[1], breaker.tripped)
