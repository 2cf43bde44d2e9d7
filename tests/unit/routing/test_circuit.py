"""Circuit breakers stop calls to a failing model, probe it once, and recover on success."""

from __future__ import annotations

import pytest

from gateway.config import CircuitConfig
from gateway.routing import CLOSED, HALF_OPEN, OPEN, CircuitBoard, CircuitBreaker

from .conftest import FakeClock

CONFIG = CircuitConfig(
    failure_threshold=3, error_rate=0.5, window_s=30.0, min_requests=10, open_s=10.0
)


def breaker(clock: FakeClock, config: CircuitConfig = CONFIG) -> CircuitBreaker:
    return CircuitBreaker(config, clock)


def test_consecutive_failures_open_the_circuit(clock: FakeClock) -> None:
    b = breaker(clock)
    b.record(False)
    b.record(False)
    assert b.state == CLOSED and b.allow()
    b.record(False)
    assert b.state == OPEN
    assert not b.allow()
    assert b.retry_after() == pytest.approx(10.0)


def test_a_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    b = breaker(clock)
    for ok in (False, False, True, False, False):
        b.record(ok)
    assert b.state == CLOSED


def test_an_error_rate_over_the_window_opens_the_circuit(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(4):  # fail, succeed, alternately: never 3 failures in a row
        b.record(False)
        b.record(True)
    assert b.state == CLOSED  # 8 calls: below min_requests
    b.record(False)
    b.record(True)
    assert b.state == OPEN  # 10 calls, 5 errors: 50%


def test_errors_older_than_the_window_do_not_count(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(4):
        b.record(False)
        b.record(True)
    clock.advance(31.0)
    b.record(False)
    b.record(True)
    assert b.state == CLOSED


def test_half_open_lets_exactly_one_probe_through_and_success_closes(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.record(False)
    clock.advance(9.9)
    assert not b.allow()
    clock.advance(0.1)
    assert b.state == HALF_OPEN
    assert b.allow()  # the probe
    assert not b.allow()  # everyone else waits for it
    b.record(True)
    assert b.state == CLOSED
    assert b.allow() and b.allow()


def test_a_failed_probe_reopens_for_another_full_period(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.record(False)
    clock.advance(10.0)
    assert b.allow()
    clock.advance(1.0)
    b.record(False)
    assert b.state == OPEN
    assert b.retry_after() == pytest.approx(10.0)
    clock.advance(10.0)
    assert b.allow()


def test_a_lost_probe_expires_so_the_circuit_cannot_stick(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.record(False)
    clock.advance(10.0)
    assert b.allow()
    clock.advance(5.0)
    assert not b.allow()
    assert b.retry_after() == pytest.approx(5.0)
    clock.advance(5.0)  # its caller never reported back
    assert b.allow()


def test_late_outcomes_while_open_change_nothing(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.record(False)
    b.record(True)  # a call started before the circuit opened
    assert b.state == OPEN
    clock.advance(10.0)
    b.record(True)  # half-open, but no probe was let through
    assert b.state == HALF_OPEN


def test_after_closing_old_failures_are_forgotten(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.record(False)
    clock.advance(10.0)
    b.allow()
    b.record(True)
    b.record(False)
    b.record(False)
    assert b.state == CLOSED


def test_the_board_creates_breakers_lazily_per_provider_and_model(clock: FakeClock) -> None:
    board = CircuitBoard(CONFIG, clock)
    assert board.get("openai", "gpt") is board.get("openai", "gpt")
    assert board.get("azure", "gpt") is not board.get("openai", "gpt")
    assert board.available("nobody", "never-called")
    assert board.retry_after("nobody", "never-called") == 0.0


def test_the_board_tracks_which_circuits_are_not_closed(clock: FakeClock) -> None:
    board = CircuitBoard(CONFIG, clock)
    b = board.get("openai", "gpt")
    for _ in range(3):
        b.record(False)
    assert board.tripped == {("openai", "gpt")}
    assert not board.available("openai", "gpt")
    assert board.states() == {("openai", "gpt"): OPEN}
    clock.advance(10.0)
    # Asking whether it is available does not take the probe; allow() does.
    assert board.available("openai", "gpt") and board.available("openai", "gpt")
    assert b.allow()
    assert not board.available("openai", "gpt")
    b.record(True)
    assert board.tripped == set()
