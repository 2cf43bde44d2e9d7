"""Bradley-Terry ratings from pairwise judgements, with intervals that bootstrap cases."""

from __future__ import annotations

import numpy as np
import pandas as pd

from evals.stats.intervals import rng_for

# Elo-like scale, as Chatbot Arena reports it: 400 points is a factor of 10 in odds.
SCALE = 400.0
BASE = 1000.0
# Half a game won each way for every pair that met keeps a clean sweep's rating finite.
PRIOR_GAMES = 0.5


def _fit(wins: np.ndarray, iterations: int = 1000, tol: float = 1e-9) -> np.ndarray:
    """Maximum-likelihood strengths by Hunter's (2004) MM algorithm, batched.

    `wins` is (..., m, m): wins[i, j] is how often i beat j (ties count half to each).
    Returns log10 strengths with mean zero, same leading shape.
    """
    games = wins + np.swapaxes(wins, -1, -2)
    total_wins = wins.sum(axis=-1)
    p = np.ones(wins.shape[:-1])
    for _ in range(iterations):
        denom = (games / (p[..., :, None] + p[..., None, :])).sum(axis=-1)
        new = np.where(denom > 0, total_wins / np.where(denom > 0, denom, 1.0), p)
        new = new / np.exp(np.log(new).mean(axis=-1, keepdims=True))
        if np.max(np.abs(new - p)) < tol:
            p = new
            break
        p = new
    return np.log10(p)


def bradley_terry(
    pairwise: pd.DataFrame,
    confidence: float = 0.95,
    resamples: int = 500,
    seed: int | np.random.Generator | None = 0,
) -> pd.DataFrame:
    """Ratings by Bradley-Terry maximum likelihood, with percentile bootstrap intervals.

    `pairwise` has `case_id`, `model_a`, `model_b`, `winner` ("a", "b" or "tie"). A tie is
    half a win to each side. The bootstrap resamples cases, taking all of a case's
    judgements (prompts, repeats, pairs) together. Ratings are on Chatbot Arena's Elo-like
    scale: mean 1000, 400 points per factor of 10 in the odds of winning.
    """
    columns = ["model", "rating", "ci_low", "ci_high", "games", "wins", "ties", "losses"]
    if pairwise.empty:
        return pd.DataFrame(columns=columns)
    models = sorted(set(pairwise["model_a"]) | set(pairwise["model_b"]))
    index = {m: i for i, m in enumerate(models)}
    m = len(models)
    cases, case_idx = np.unique(pairwise["case_id"].astype(str).to_numpy(), return_inverse=True)
    ia = pairwise["model_a"].map(index).to_numpy()
    ib = pairwise["model_b"].map(index).to_numpy()
    winner = pairwise["winner"].to_numpy()
    a_score = np.select([winner == "a", winner == "tie"], [1.0, 0.5], 0.0)

    # Per-case win matrices, flattened: (cases, m * m).
    per_case = np.zeros((cases.size, m * m))
    np.add.at(per_case, (case_idx, ia * m + ib), a_score)
    np.add.at(per_case, (case_idx, ib * m + ia), 1.0 - a_score)
    observed = per_case.sum(axis=0).reshape(m, m)
    met = (observed + observed.T) > 0
    prior = np.where(met, PRIOR_GAMES, 0.0)

    point = _fit(observed + prior)
    rng = rng_for(seed)
    counts = np.stack(
        [
            np.bincount(rng.integers(0, cases.size, cases.size), minlength=cases.size)
            for _ in range(resamples)
        ]
    )
    boot = _fit((counts @ per_case).reshape(resamples, m, m) + prior)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha], axis=0)

    won = observed.sum(axis=1)
    ties = np.zeros(m)
    tie_rows = winner == "tie"
    np.add.at(ties, ia[tie_rows], 1)
    np.add.at(ties, ib[tie_rows], 1)
    games = (observed + observed.T).sum(axis=1)
    frame = pd.DataFrame(
        {
            "model": models,
            "rating": BASE + SCALE * point,
            "ci_low": BASE + SCALE * low,
            "ci_high": BASE + SCALE * high,
            "games": games.astype(int),
            "wins": (won - ties / 2).round().astype(int),
            "ties": ties.astype(int),
            "losses": (games - won - ties / 2).round().astype(int),
        }
    )
    return frame.sort_values("rating", ascending=False, ignore_index=True)


def win_rates(pairwise: pd.DataFrame) -> pd.DataFrame:
    """Row model's share of wins against the column model (ties count half), from judgements."""
    a = pairwise[["model_a", "model_b", "winner"]].rename(
        columns={"model_a": "row", "model_b": "col"}
    )
    a = a.assign(score=np.select([a.winner == "a", a.winner == "tie"], [1.0, 0.5], 0.0))
    b = a.rename(columns={"row": "col", "col": "row"}).assign(score=1.0 - a.score)
    both = pd.concat([a, b], ignore_index=True)
    return both.pivot_table(index="row", columns="col", values="score", aggfunc="mean")
