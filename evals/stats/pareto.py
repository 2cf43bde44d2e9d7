"""The cost-quality Pareto frontier."""

from __future__ import annotations

import numpy as np


def pareto_frontier(cost: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Which points no other point beats: as cheap or cheaper and as good or better, and
    strictly one of the two. Returns a boolean mask; NaN points are never on the frontier."""
    cost = np.asarray(cost, dtype=float)
    quality = np.asarray(quality, dtype=float)
    valid = ~(np.isnan(cost) | np.isnan(quality))
    on = np.zeros(cost.shape, dtype=bool)
    for i in np.flatnonzero(valid):
        no_worse = valid & (cost <= cost[i]) & (quality >= quality[i])
        better = no_worse & ((cost < cost[i]) | (quality > quality[i]))
        on[i] = not better.any()
    return on
