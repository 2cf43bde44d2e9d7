"""Retries back off exponentially with jitter, honour Retry-After, and never retry the hopeless."""

from __future__ import annotations

import pytest

from gateway.config import RetryConfig
from gateway.errors import (
    InvalidRequestError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamError,
    from_status,
)
from gateway.routing import RetryPolicy

CONFIG = RetryConfig(max_attempts=3, base_delay_s=0.1, max_delay_s=1.0, max_retry_after_s=5.0)


def test_delay_is_full_jitter_under_an_exponential_cap() -> None:
    highest = RetryPolicy(CONFIG, rand=lambda: 1.0)
    lowest = RetryPolicy(CONFIG, rand=lambda: 0.0)
    assert [highest.delay(a) for a in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert [lowest.delay(a) for a in range(6)] == [0.0] * 6
    assert RetryPolicy(CONFIG, rand=lambda: 0.5).delay(2) == pytest.approx(0.2)


def test_default_random_delays_stay_within_bounds() -> None:
    policy = RetryPolicy(CONFIG)
    delays = [policy.delay(3) for _ in range(200)]
    assert all(0.0 <= d <= 0.8 for d in delays)
    assert len(set(delays)) > 1  # jittered, not in lockstep


def test_retry_after_is_honoured_up_to_its_cap() -> None:
    policy = RetryPolicy(CONFIG, rand=lambda: 1.0)
    assert policy.delay(1, retry_after=2.5) == 2.5
    assert policy.delay(1, retry_after=60.0) == 5.0
    assert policy.delay(1, retry_after=-1.0) == 0.0


def test_only_retryable_errors_are_retried_while_attempts_remain() -> None:
    policy = RetryPolicy(CONFIG)
    assert policy.should_retry(ServiceUnavailableError("busy"), attempt=1)
    assert policy.should_retry(RateLimitError("slow down"), attempt=2)
    assert not policy.should_retry(RateLimitError("slow down"), attempt=3)
    assert not policy.should_retry(InvalidRequestError("bad"), attempt=1)


def test_refused_upstream_credentials_are_never_retried() -> None:
    error = from_status(401, "bad key", provider="openai")
    assert isinstance(error, UpstreamError) and error.retryable
    assert not RetryPolicy(CONFIG).should_retry(error, attempt=1)


def test_a_retry_after_beyond_the_cap_means_fall_back_instead() -> None:
    policy = RetryPolicy(CONFIG)
    assert policy.should_retry(RateLimitError("wait", retry_after=5.0), attempt=1)
    assert not policy.should_retry(RateLimitError("wait", retry_after=30.0), attempt=1)


def test_a_pool_with_no_replica_is_not_retried_but_falls_back() -> None:
    error = ServiceUnavailableError("no replica", code="pool_no_replica")
    assert error.retryable  # a 503: the next candidate takes it
    assert not RetryPolicy(RetryConfig()).should_retry(error, attempt=1)
