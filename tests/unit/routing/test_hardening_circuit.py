"""In half-open state only the probe's own outcome decides, never a late one from an older
call."""

from __future__ import annotations

from gateway.config import CircuitConfig
from gateway.routing.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker

CONFIG = CircuitConfig(failure_threshold=2, open_s=10.0)


def test_a_late_success_from_an_older_call_does_not_close_a_half_open_circuit() -> None:
    b = CircuitBreaker(CONFIG, clock=lambda: 0.0)
    slow = b.acquire(0.0)  # a call that will take a long time
    assert slow is not None
    for _ in range(2):
        b.record(False, 1.0, b.acquire(1.0))
    assert b.state_at(1.0) == OPEN
    probe = b.acquire(12.0)
    assert probe is not None and b.state_at(12.0) == HALF_OPEN
    b.record(True, 12.5, slow)  # the old call finally succeeds
    assert b.state_at(12.5) == HALF_OPEN and b.acquire(12.5) is None
    b.record(False, 13.0, probe)  # the probe itself fails
    assert b.state_at(13.0) == OPEN


def test_the_probes_success_closes_it() -> None:
    b = CircuitBreaker(CONFIG, clock=lambda: 0.0)
    for _ in range(2):
        b.record(False, 1.0, b.acquire(1.0))
    stale_probe = b.acquire(12.0)
    # The first probe never reports; after open_s another is let through.
    probe = b.acquire(23.0)
    assert probe is not None and probe != stale_probe
    b.record(False, 23.5, stale_probe)
    assert b.state_at(23.5) == HALF_OPEN
    b.record(True, 24.0, probe)
    assert b.state_at(24.0) == CLOSED
