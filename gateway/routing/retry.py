"""When to retry a failed upstream call on the same model, and how long to wait first."""

from __future__ import annotations

import random
from collections.abc import Callable

from gateway.config import RetryConfig
from gateway.errors import GatewayError

# The upstream's credentials are wrong: retrying the same model cannot succeed, and hammering
# a provider with a bad key can get the key locked.
# A pool Serve cannot start a replica for (deployments/pool_status.py) stays so for longer than
# a retry waits: the next candidate, not the same pool again.
_NEVER_RETRY_CODES = frozenset({"upstream_auth_failed", "pool_no_replica"})


class RetryPolicy:
    """Exponential backoff with full jitter, honouring a bounded `Retry-After`.

    `attempt` counts the calls already made to this model (1 after the first failure).
    """

    def __init__(self, config: RetryConfig, rand: Callable[[], float] = random.random) -> None:
        self.config = config
        self._rand = rand

    def should_retry(self, error: GatewayError, attempt: int) -> bool:
        """Whether to call the same model again after `error`, rather than fall back."""
        if not error.retryable or error.code in _NEVER_RETRY_CODES:
            return False
        if attempt >= self.config.max_attempts:
            return False
        # A Retry-After beyond our cap means waiting here would stall the client; the next
        # candidate in the fallback chain is the better bet.
        return error.retry_after is None or error.retry_after <= self.config.max_retry_after_s

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before the next call: the upstream's Retry-After, else full jitter."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.config.max_retry_after_s)
        # Full jitter (uniform over [0, cap]) spreads replicas' retries apart after a shared
        # failure instead of having them hit the provider again in lockstep.
        cap = min(
            self.config.max_delay_s, self.config.base_delay_s * 2.0 ** min(max(attempt, 0), 60)
        )
        return self._rand() * cap
