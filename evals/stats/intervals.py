"""Confidence intervals for a mean: the bootstrap over cases and Wilson's score interval."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

# Bootstrap resamples are drawn in blocks of this many rows so that 2,000 resamples of
# 100,000 cases never hold more than ~50 MB of indices at once.
_BLOCK_CELLS = 4_000_000


@dataclass(frozen=True)
class Interval:
    """A point estimate with its two-sided interval and the method that made it."""

    estimate: float
    low: float
    high: float
    method: str


def rng_for(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A numpy Generator from a seed (or the Generator itself), so every result reproduces."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def bootstrap_means(
    values: np.ndarray, resamples: int, seed: int | np.random.Generator | None = 0
) -> np.ndarray:
    """Means of `resamples` bootstrap samples of `values` (one value per case), vectorised.

    `values` may be 2-D (cases x series): the same case indices are drawn for every column,
    which is what a paired comparison needs. Returns (resamples,) or (resamples, series).
    """
    values = np.asarray(values, dtype=float)
    n = values.shape[0]
    rng = rng_for(seed)
    block = max(1, _BLOCK_CELLS // max(n, 1))
    out = []
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        idx = rng.integers(0, n, size=(rows, n), dtype=np.int32 if n < 2**31 else np.int64)
        out.append(values[idx].mean(axis=1))
    return np.concatenate(out, axis=0)


def bootstrap_mean_ci(
    case_values: np.ndarray,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int | np.random.Generator | None = 0,
) -> Interval:
    """Mean of per-case values with a percentile bootstrap interval that resamples cases.

    Pass one value per case (repeats and prompts already averaged within the case), so that
    correlated observations of a case move together: the cluster bootstrap.
    """
    x = np.asarray(case_values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return Interval(np.nan, np.nan, np.nan, "bootstrap")
    means = bootstrap_means(x, resamples, seed)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Interval(float(x.mean()), float(low), float(high), "bootstrap")


def wilson_ci(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson's score interval for a binomial proportion (one pass/fail outcome per case)."""
    if n == 0:
        return Interval(np.nan, np.nan, np.nan, "wilson")
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * float(np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / denom
    # The bounds are exactly 0 and 1 at the extremes; rounding would leave 1e-17.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(p, low, high, "wilson")
