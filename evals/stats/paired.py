"""Two systems on the same cases: paired difference, its interval and significance tests."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evals.stats.intervals import bootstrap_means, rng_for

# McNemar's chi-square approximation is poor below this many discordant pairs; the exact
# binomial test is used instead.
_EXACT_BELOW = 25


@dataclass(frozen=True)
class PairedDifference:
    """mean(b) - mean(a) over shared cases, its bootstrap interval, a p-value and the test."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str
    n: int
    wins: int
    ties: int
    losses: int


def paired_bootstrap_ci(
    a: np.ndarray,
    b: np.ndarray,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int | np.random.Generator | None = 0,
) -> tuple[float, float, float]:
    """mean(b - a) with a percentile bootstrap interval that resamples cases.

    `a` and `b` hold one value per case, aligned (repeats and prompts averaged within a case),
    so a resampled case brings both systems' results and all its repeats along.
    """
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    means = bootstrap_means(d, resamples, seed)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(d.mean()), float(low), float(high)


def sign_flip_p_value(
    d: np.ndarray, resamples: int = 4000, seed: int | np.random.Generator | None = 0
) -> float:
    """Two-sided paired permutation test of mean(d) = 0, flipping each case's sign at random.

    Under the null hypothesis the two systems are exchangeable within a case, so each case
    difference is as likely to be d as -d. The p-value counts the observed statistic as one
    of the permutations, so it is never zero.
    """
    d = np.asarray(d, dtype=float)
    d = d[d != 0]  # zero differences are the same under every flip
    if d.size == 0:
        return 1.0
    rng = rng_for(seed)
    observed = abs(d.mean())
    block = max(1, 4_000_000 // d.size)
    extreme = 0
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        signs = rng.integers(0, 2, size=(rows, d.size), dtype=np.int8) * 2 - 1
        extreme += int(np.count_nonzero(np.abs(signs @ d) / d.size >= observed - 1e-12))
    return (extreme + 1) / (resamples + 1)


def mcnemar_p_value(a_pass: np.ndarray, b_pass: np.ndarray) -> tuple[float, str]:
    """McNemar's test on paired pass/fail outcomes: exact binomial when discordance is small.

    Only the discordant cases count: a passed and b failed, or the reverse. Below 25 of
    them the two-sided exact binomial test; otherwise chi-square with continuity correction.
    """
    a_pass = np.asarray(a_pass, dtype=bool)
    b_pass = np.asarray(b_pass, dtype=bool)
    only_a = int(np.count_nonzero(a_pass & ~b_pass))
    only_b = int(np.count_nonzero(~a_pass & b_pass))
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0, "mcnemar-exact"
    if discordant < _EXACT_BELOW:
        # Two-sided exact binomial test at p = 1/2: twice the smaller tail, at most 1.
        tail = sum(math.comb(discordant, i) for i in range(min(only_a, only_b) + 1))
        return min(1.0, 2 * tail / 2**discordant), "mcnemar-exact"
    statistic = (abs(only_a - only_b) - 1) ** 2 / discordant
    # The chi-square survival function with one degree of freedom.
    return math.erfc(math.sqrt(statistic / 2)), "mcnemar"


def paired_difference(
    a: np.ndarray,
    b: np.ndarray,
    binary: bool = False,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int | np.random.Generator | None = 0,
) -> PairedDifference:
    """Compare b against a on aligned per-case values.

    `binary` says each case holds one pass/fail outcome per system (no repeats): the
    p-value is then McNemar's; otherwise the sign-flip permutation test's.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if a.size == 0:
        return PairedDifference(np.nan, np.nan, np.nan, np.nan, "none", 0, 0, 0, 0)
    rng = rng_for(seed)
    diff, low, high = paired_bootstrap_ci(a, b, confidence, resamples, rng)
    if binary:
        p_value, test = mcnemar_p_value(a >= 0.5, b >= 0.5)
    else:
        p_value, test = sign_flip_p_value(b - a, 2 * resamples, rng), "sign-flip"
    return PairedDifference(
        diff=diff,
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        test=test,
        n=int(a.size),
        wins=int(np.count_nonzero(b > a)),
        ties=int(np.count_nonzero(b == a)),
        losses=int(np.count_nonzero(b < a)),
    )


def holm_adjust(p_values: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values: family-wise error control across many pairs."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = ~np.isnan(p)
    pv = p[valid]
    m = pv.size
    if m == 0:
        return out
    order = np.argsort(pv)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * pv[order])
    result = np.empty(m)
    result[order] = np.minimum(adjusted, 1.0)
    out[valid] = result
    return out
