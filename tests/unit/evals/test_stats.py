"""Statistics on small inputs whose answers are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evals.stats import (
    bootstrap_mean_ci,
    bradley_terry,
    holm_adjust,
    mcnemar_p_value,
    paired_difference,
    pareto_frontier,
    pass_at_k,
    pass_hat_k,
    sign_flip_p_value,
    wilson_ci,
)


def test_pass_at_k_matches_the_combinatorial_definition() -> None:
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                expected = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(np.array([n]), np.array([c]), k)[0] == pytest.approx(expected)
                hat = math.comb(c, k) / math.comb(n, k)
                assert pass_hat_k(np.array([n]), np.array([c]), k)[0] == pytest.approx(hat)


def test_pass_at_k_is_nan_when_a_case_has_fewer_attempts_than_k() -> None:
    assert np.isnan(pass_at_k(np.array([2]), np.array([1]), 3)[0])
    assert np.isnan(pass_hat_k(np.array([2]), np.array([1]), 3)[0])


def test_wilson_matches_the_textbook_value() -> None:
    # 8 of 10, 95%: Wilson's interval is (0.4902, 0.9433).
    interval = wilson_ci(8, 10)
    assert interval.estimate == 0.8
    assert interval.low == pytest.approx(0.4902, abs=1e-4)
    assert interval.high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_ci(0, 20).low == 0.0 and wilson_ci(20, 20).high == 1.0


def test_bootstrap_is_seeded() -> None:
    x = np.random.default_rng(1).random(2000)
    first = bootstrap_mean_ci(x, resamples=2000, seed=7)
    assert first == bootstrap_mean_ci(x, resamples=2000, seed=7)
    assert first != bootstrap_mean_ci(x, resamples=2000, seed=8)
    assert first.low < x.mean() < first.high


def test_mcnemar_counts_only_discordant_cases() -> None:
    a = np.array([1] * 50 + [1] * 10 + [0] * 2 + [0] * 38, dtype=bool)
    b = np.array([1] * 50 + [0] * 10 + [1] * 2 + [0] * 38, dtype=bool)
    p, test = mcnemar_p_value(a, b)
    # 10 against 2 discordant: exact two-sided binomial p = 0.0386.
    assert test == "mcnemar-exact"
    assert p == pytest.approx(0.03857, abs=1e-4)
    p, test = mcnemar_p_value(np.ones(40, bool), np.r_[np.zeros(30, bool), np.ones(10, bool)])
    assert test == "mcnemar" and p < 1e-6


def test_sign_flip_p_value_is_one_for_identical_systems_and_small_for_a_clear_gap() -> None:
    assert sign_flip_p_value(np.zeros(50)) == 1.0
    assert sign_flip_p_value(np.full(50, 0.2)) < 0.001


def test_paired_difference_counts_wins_ties_and_losses_from_b_side() -> None:
    a = np.array([0.0, 0.5, 1.0, 1.0])
    b = np.array([1.0, 0.5, 0.0, 1.0])
    result = paired_difference(a, b)
    assert (result.wins, result.ties, result.losses, result.n) == (1, 2, 1, 4)
    assert result.diff == 0.0


def test_holm_adjusts_in_step_down_order() -> None:
    assert holm_adjust(np.array([0.01, 0.04, 0.03])) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjust(np.array([0.5, 0.9])) == pytest.approx([1.0, 1.0])


def test_pareto_frontier_keeps_only_undominated_points() -> None:
    cost = np.array([1.0, 2.0, 3.0, 2.5, np.nan])
    quality = np.array([0.5, 0.7, 0.9, 0.6, 1.0])
    assert pareto_frontier(cost, quality).tolist() == [True, True, True, False, False]


def test_bradley_terry_recovers_the_order_and_gaps_of_known_strengths() -> None:
    rng = np.random.default_rng(3)
    true = {"weak": -200.0, "mid": 0.0, "strong": 200.0}
    rows = []
    names = list(true)
    for case in range(1500):
        a, b = rng.choice(names, 2, replace=False)
        p_a = 1 / (1 + 10 ** ((true[b] - true[a]) / 400))
        rows.append(
            {
                "case_id": f"c{case}",
                "model_a": a,
                "model_b": b,
                "winner": "a" if rng.random() < p_a else "b",
            }
        )
    ratings = bradley_terry(pd.DataFrame(rows), resamples=200, seed=0).set_index("model")
    assert list(ratings.index) == ["strong", "mid", "weak"]
    gap = ratings.loc["strong", "rating"] - ratings.loc["weak", "rating"]
    assert gap == pytest.approx(400, abs=60)
    for name in names:
        low, high = ratings.loc[name, ["ci_low", "ci_high"]]
        assert 10 < high - low < 120, (name, low, high)
        # Within two half-widths of the truth (one 95% interval of three may miss it).
        assert abs(ratings.loc[name, "rating"] - (true[name] + 1000)) < high - low, name
    assert ratings["games"].sum() == 2 * 1500


def test_bradley_terry_counts_ties_half_and_stays_finite_for_a_clean_sweep() -> None:
    frame = pd.DataFrame(
        {
            "case_id": ["1", "2", "3"],
            "model_a": ["x", "x", "x"],
            "model_b": ["y", "y", "y"],
            "winner": ["a", "a", "tie"],
        }
    )
    ratings = bradley_terry(frame, resamples=50).set_index("model")
    assert ratings.loc["x", ["wins", "ties", "losses"]].tolist() == [2, 1, 0]
    assert ratings.loc["y", ["wins", "ties", "losses"]].tolist() == [0, 1, 2]
    sweep = frame.assign(winner="a")
    assert np.isfinite(bradley_terry(sweep, resamples=20)["rating"]).all()
