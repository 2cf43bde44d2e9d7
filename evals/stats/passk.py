"""pass@k (Chen et al. 2021, unbiased) and pass^k (tau-bench) over repeated attempts."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def pass_at_k(n: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """Chance that at least one of k attempts drawn without replacement from n passes.

    The unbiased estimator 1 - C(n-c, k) / C(n, k), per case, computed as a product so it
    stays exact for large n. Cases with fewer than k attempts give NaN.
    """

    def one(ni: int, ci: int) -> float:
        if ni - ci < k:
            return 1.0
        return float(1.0 - np.prod(1.0 - k / np.arange(ni - ci + 1, ni + 1)))

    return _per_case(n, c, k, one)


def pass_hat_k(n: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """Chance that all of k attempts drawn without replacement from n pass: C(c, k) / C(n, k).

    tau-bench's pass^k, a measure of consistency. Cases with fewer than k attempts give NaN.
    """
    j = np.arange(k)

    def one(ni: int, ci: int) -> float:
        # C(c, k) / C(n, k) = prod_{j=0}^{k-1} (c - j) / (n - j)
        return float(np.prod(np.clip(ci - j, 0, None) / (ni - j)))

    return _per_case(n, c, k, one)


def _per_case(n: np.ndarray, c: np.ndarray, k: int, one: Callable[[int, int], float]) -> np.ndarray:
    """`one(n, c)` for each case of n attempts with c passes; NaN where n < k."""
    n = np.asarray(n, dtype=int)
    c = np.asarray(c, dtype=int)
    out = np.full(n.shape, np.nan)
    for i, (ni, ci) in enumerate(zip(n.ravel(), c.ravel(), strict=True)):
        if ni >= k:
            out.flat[i] = one(int(ni), int(ci))
    return out
