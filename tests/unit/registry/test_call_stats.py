"""Rolling per-model call statistics: what latency routing and health see."""

from __future__ import annotations

import pytest

from gateway.registry.stats import CallSample, CallStats, ModelWindow, percentile


def sample(latency: float, *, ok: bool = True, ttft: float | None = None, at: float = 1000.0):
    return CallSample(model="fast", provider="sim", ok=ok, latency_ms=latency, ttft_ms=ttft, at=at)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([7.0], 99) == 7
    assert percentile([], 50) is None


def test_latency_counts_successful_calls_and_errors_count_separately() -> None:
    window = ModelWindow()
    for latency in range(1, 101):
        window.add(sample(float(latency), ttft=latency / 10))
    window.add(sample(1.0, ok=False))  # a fast failure must not make the model look fast
    stats = window.stats(now=1000.0)
    assert (stats.requests, stats.errors) == (101, 1)
    assert stats.error_rate == pytest.approx(1 / 101)
    assert (stats.latency_p50_ms, stats.latency_p99_ms) == (50, 99)
    assert (stats.ttft_p50_ms, stats.ttft_p99_ms) == (5, 9.9)


def test_window_keeps_five_minutes_and_at_most_1024_calls() -> None:
    window = ModelWindow()
    for i in range(2000):
        window.add(sample(float(i), at=1000.0 + i * 0.1))
    assert len(window) == 1024
    now = 1000.0 + 1999 * 0.1
    assert window.stats(now).requests == 1024
    assert window.stats(now + 300.0 - 1024 * 0.1 + 50).requests < 1024
    assert window.stats(now + 301).requests == 0


def test_a_late_sample_older_than_the_window_is_left_out() -> None:
    window = ModelWindow()
    window.add(sample(10.0, at=1000.0))
    window.add(sample(20.0, at=600.0))  # reported late by a slow replica
    assert window.stats(now=1000.0).requests == 1


def test_models_without_recent_calls_drop_out() -> None:
    stats = CallStats()
    assert stats.add([sample(5.0, at=0.0), CallSample("smart", "sim", True, 9.0, at=200.0)]) == 2
    assert set(stats.compute(now=250.0)) == {"fast", "smart"}
    assert stats.expires_by(now=301.0)
    assert set(stats.compute(now=301.0)) == {"smart"}
    stats.forget("smart")
    assert stats.compute(now=301.0) == {}
    assert not stats.expires_by(now=10_000.0)
