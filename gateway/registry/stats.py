"""Live performance per model: a rolling window of recent calls, reduced to `ModelStats`.

Replicas report one `CallSample` per upstream call; the registry keeps the last five minutes
(at most 1,024 calls) per model and publishes percentiles with its snapshots.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gateway.registry.snapshot import ModelStats

WINDOW_S = 300.0
WINDOW_SAMPLES = 1024


@dataclass(frozen=True, slots=True)
class CallSample:
    """One upstream call's outcome, as a replica saw it."""

    model: str
    provider: str
    ok: bool
    latency_ms: float
    ttft_ms: float | None = None
    at: float = field(default_factory=time.time)


class ModelWindow:
    """The most recent calls to one model: no older than `horizon_s`, at most `max_samples`."""

    def __init__(self, horizon_s: float = WINDOW_S, max_samples: int = WINDOW_SAMPLES) -> None:
        self.horizon_s = horizon_s
        self._samples: deque[CallSample] = deque(maxlen=max_samples)

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, sample: CallSample) -> None:
        self._samples.append(sample)

    def expires_by(self, now: float) -> bool:
        """Whether some sample has aged out of the window by `now` (so the stats would change)."""
        return bool(self._samples) and self._samples[0].at < now - self.horizon_s

    def stats(self, now: float) -> ModelStats:
        """Drop what aged out, then reduce the rest: latency over successful calls only."""
        cutoff = now - self.horizon_s
        while self._samples and self._samples[0].at < cutoff:
            self._samples.popleft()
        # Samples arrive in batches from many replicas, so `at` is only roughly ordered:
        # a late one older than the cutoff is still left out here.
        recent = [s for s in self._samples if s.at >= cutoff]
        latencies = sorted(s.latency_ms for s in recent if s.ok)
        ttfts = sorted(s.ttft_ms for s in recent if s.ok and s.ttft_ms is not None)
        return ModelStats(
            requests=len(recent),
            errors=sum(1 for s in recent if not s.ok),
            latency_p50_ms=percentile(latencies, 50),
            latency_p99_ms=percentile(latencies, 99),
            ttft_p50_ms=percentile(ttfts, 50),
            ttft_p99_ms=percentile(ttfts, 99),
        )


class CallStats:
    """Rolling windows for every model that has been called."""

    def __init__(self, horizon_s: float = WINDOW_S, max_samples: int = WINDOW_SAMPLES) -> None:
        self.horizon_s = horizon_s
        self.max_samples = max_samples
        self._windows: dict[str, ModelWindow] = {}

    def add(self, samples: Iterable[CallSample]) -> int:
        """Add samples; returns how many were taken."""
        count = 0
        for sample in samples:
            window = self._windows.get(sample.model)
            if window is None:
                window = self._windows[sample.model] = ModelWindow(self.horizon_s, self.max_samples)
            window.add(sample)
            count += 1
        return count

    def forget(self, model: str) -> None:
        self._windows.pop(model, None)

    def expires_by(self, now: float) -> bool:
        return any(window.expires_by(now) for window in self._windows.values())

    def compute(self, now: float) -> dict[str, ModelStats]:
        """Current stats of every model with calls in its window; empty windows are dropped."""
        result: dict[str, ModelStats] = {}
        for model, window in list(self._windows.items()):
            stats = window.stats(now)
            if stats.requests:
                result[model] = stats
            else:
                del self._windows[model]
        return result


def percentile(ordered: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending sequence; None when it is empty."""
    if not ordered:
        return None
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return float(ordered[rank - 1])
