"""The intervals and tests, checked against simulated scores whose truth is known.

Each test draws a few hundred independent experiments from a known population and counts
how often the method is right. Seeds are fixed, so the counts below are exact and the
README's figures can quote them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evals.stats import (
    bootstrap_mean_ci,
    compare_pairs,
    paired_difference,
    summarize,
    wilson_ci,
)

REPLICATIONS = 400
CASES = 200
REPEATS = 3


def _graded_run(rng: np.random.Generator, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Two systems on the same cases: each case has a difficulty both share, and each system
    answers it REPEATS times with pass probability difficulty (+ shift for b). Returns the
    per-case mean score of a and b. True means: 0.5 and 0.5 + shift."""
    difficulty = rng.beta(2, 2, CASES) * (1 - abs(shift))
    a = rng.binomial(REPEATS, difficulty) / REPEATS
    b = rng.binomial(REPEATS, difficulty + shift) / REPEATS
    return a, b


def test_cluster_bootstrap_interval_covers_the_true_mean_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(2026)
    covered = 0
    for _ in range(REPLICATIONS):
        a, _ = _graded_run(rng)
        interval = bootstrap_mean_ci(a, resamples=1000, seed=rng)
        covered += interval.low <= 0.5 <= interval.high
    coverage = covered / REPLICATIONS
    print(f"bootstrap coverage {coverage:.3f}")
    assert 0.93 <= coverage <= 0.97


def test_wilson_interval_covers_the_true_pass_rate_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(7)
    passes = rng.binomial(CASES, 0.3, REPLICATIONS)
    coverage = np.mean(
        [wilson_ci(int(s), CASES).low <= 0.3 <= wilson_ci(int(s), CASES).high for s in passes]
    )
    print(f"wilson coverage {coverage:.3f}")
    assert 0.93 <= coverage <= 0.97


def test_no_true_difference_is_called_significant_about_5_percent_of_the_time() -> None:
    rng = np.random.default_rng(11)
    significant = 0
    covered = 0
    for _ in range(REPLICATIONS):
        a, b = _graded_run(rng)
        result = paired_difference(a, b, resamples=1000, seed=rng)
        significant += result.p_value < 0.05
        covered += result.ci_low <= 0.0 <= result.ci_high
    rate, coverage = significant / REPLICATIONS, covered / REPLICATIONS
    print(f"sign-flip false positives {rate:.3f}, paired interval coverage {coverage:.3f}")
    assert 0.025 <= rate <= 0.075
    assert 0.93 <= coverage <= 0.97


def test_mcnemar_false_positive_rate_stays_at_or_below_5_percent() -> None:
    rng = np.random.default_rng(5)
    significant = 0
    for _ in range(REPLICATIONS):
        difficulty = rng.beta(2, 2, CASES)
        a, b = rng.random(CASES) < difficulty, rng.random(CASES) < difficulty
        significant += paired_difference(a, b, binary=True, resamples=200, seed=rng).p_value < 0.05
    rate = significant / REPLICATIONS
    print(f"mcnemar false positives {rate:.3f}")
    assert rate <= 0.07


def test_a_true_difference_of_0_1_over_2000_cases_is_found() -> None:
    rng = np.random.default_rng(3)
    for _ in range(10):
        difficulty = rng.beta(2, 2, 2000) * 0.9
        a = rng.binomial(REPEATS, difficulty) / REPEATS
        b = rng.binomial(REPEATS, difficulty + 0.1) / REPEATS
        result = paired_difference(a, b, resamples=1000, seed=rng)
        assert result.p_value < 0.001
        assert 0.0 < result.ci_low <= 0.1 <= result.ci_high


def _rows(rng: np.random.Generator, shift: float) -> pd.DataFrame:
    """A results table in the run layout for two systems, REPEATS attempts per case."""
    difficulty = rng.beta(2, 2, CASES) * (1 - shift)
    frames = []
    for system, p in (("a", difficulty), ("b", difficulty + shift)):
        passed = rng.random((REPEATS, CASES)) < p
        frames.append(
            pd.DataFrame(
                {
                    "system": system,
                    "case_id": np.tile(np.arange(CASES), REPEATS),
                    "score.ok": passed.ravel().astype(float),
                    "error": None,
                    "cost_usd": 0.001,
                    "prompt_tokens": 10,
                    "completion_tokens": 5,
                    "latency_ms": 100.0,
                    "ttft_ms": 20.0,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_run_tables_are_resampled_by_case_with_repeats_kept_together() -> None:
    """The table-level functions average a case's repeats before resampling, so their
    intervals are exactly the case-level ones whose coverage the tests above measure."""
    rng = np.random.default_rng(99)
    rows = _rows(rng, 0.1)
    summary = summarize(rows, {"ok": "pass"}, resamples=500, seed=42).set_index("system")
    case_means = rows[rows.system == "a"].groupby("case_id")["score.ok"].mean()
    expected = bootstrap_mean_ci(case_means.to_numpy(), resamples=500, seed=42)
    a = summary.loc["a"]
    assert (a["mean"], a.ci_low, a.ci_high) == (expected.estimate, expected.low, expected.high)
    assert a.ci_method == "bootstrap" and a.n == CASES and a.attempts == CASES * REPEATS

    pairs = compare_pairs(rows, {"ok": "pass"}, [("a", "b")], resamples=500, seed=42)
    b_means = rows[rows.system == "b"].groupby("case_id")["score.ok"].mean()
    direct = paired_difference(
        case_means.to_numpy(), b_means.to_numpy(), resamples=500, seed=np.random.default_rng(42)
    )
    assert pairs.loc[0, ["diff", "ci_low", "ci_high", "p_value"]].tolist() == [
        direct.diff,
        direct.ci_low,
        direct.ci_high,
        direct.p_value,
    ]
    assert pairs.loc[0, "test"] == "sign-flip"
