"""How precisely a model's mean score is known: the half-width of its 95% interval, used by
`--precision` to stop a model's rows early. Plain functions over a DataFrame, no I/O."""

from __future__ import annotations

import math

import pandas as pd

Z95 = 1.959963984540054
MIN_CASES = 10


def normal_half_width(values: pd.Series) -> float:
    """Normal approximation over cases: 1.96 * sd / sqrt(n) (sample sd, n - 1)."""
    n = len(values)
    if n < 2:
        return math.inf
    return Z95 * float(values.std(ddof=1)) / math.sqrt(n)


def wilson_half_width(successes: float, n: int) -> float:
    """Half the width of the Wilson score interval for a pass rate (95%)."""
    if n == 0:
        return math.inf
    p = successes / n
    z2 = Z95 * Z95
    return Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)


def half_widths(rows: pd.DataFrame, scorer: str, kind: str) -> dict[str, tuple[float, int]]:
    """Per model: (half-width, cases) of the mean of `score.<scorer>`. Scores are averaged per
    case first (over prompts and repeats), so the interval is over cases; pass rates use Wilson
    over the case means' sum."""
    column = f"score.{scorer}"
    scored = rows[rows[column].notna()] if column in rows else rows.iloc[0:0]
    result: dict[str, tuple[float, int]] = {}
    for model, group in scored.groupby("model"):
        per_case = group.groupby("case_id")[column].mean()
        n = len(per_case)
        if kind == "pass":
            width = wilson_half_width(float(per_case.sum()), n)
        else:
            width = normal_half_width(per_case)
        result[str(model)] = (width, n)
    return result


def models_to_stop(
    rows: pd.DataFrame, scorer: str, kind: str, precision: float, min_cases: int = MIN_CASES
) -> dict[str, float]:
    """The models whose interval is already as narrow as `precision`, with their half-width."""
    return {
        model: width
        for model, (width, n) in half_widths(rows, scorer, kind).items()
        if n >= min_cases and width <= precision
    }
