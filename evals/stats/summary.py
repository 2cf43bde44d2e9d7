"""Per-system tables over a run's rows: scores with intervals, pass@k, cost, latency, tokens.

A *system* is whatever the caller groups by (a model, a model under one prompt, a model in
one run); the caller puts that label in a column. Every function here is pure: DataFrames in,
DataFrames out, seeded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from evals.stats.intervals import bootstrap_mean_ci, rng_for, wilson_ci
from evals.stats.paired import holm_adjust, paired_difference
from evals.stats.passk import pass_at_k, pass_hat_k

PASS = "pass"


def score_column(scorer: str) -> str:
    """The results column that holds a scorer's scores."""
    return f"score.{scorer}"


def case_scores(rows: pd.DataFrame, scorer: str, by: Sequence[str]) -> pd.DataFrame:
    """One row per (group, case): the mean over that case's prompts and repeats, how many
    scored attempts it had and how many passed (score >= 0.5)."""
    col = score_column(scorer)
    scored = rows.loc[rows[col].notna(), [*by, "case_id", col]]
    scored = scored.assign(passed=(scored[col] >= 0.5).astype(int))
    grouped = scored.groupby([*by, "case_id"], sort=False, observed=True)
    return grouped.agg(
        mean=(col, "mean"), attempts=(col, "size"), passes=("passed", "sum")
    ).reset_index()


def _percentile(values: pd.Series, q: float) -> float:
    values = values.dropna()
    return float(np.percentile(values, q)) if len(values) else np.nan


def _usage(rows: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    grouped = rows.groupby(list(by), sort=False, observed=True)
    usage = grouped.agg(
        n_rows=("case_id", "size"),
        errors=("error", lambda s: int(s.notna().sum())),
        cost_usd=("cost_usd", "sum"),
        prompt_tokens=("prompt_tokens", "sum"),
        completion_tokens=("completion_tokens", "sum"),
    )
    usage["cost_per_1k_cases"] = usage["cost_usd"] / usage["n_rows"] * 1000
    usage["latency_p50_ms"] = grouped["latency_ms"].agg(lambda s: _percentile(s, 50))
    usage["latency_p95_ms"] = grouped["latency_ms"].agg(lambda s: _percentile(s, 95))
    usage["ttft_p50_ms"] = grouped["ttft_ms"].agg(lambda s: _percentile(s, 50))
    return usage.reset_index()


def summarize(
    rows: pd.DataFrame,
    scorers: dict[str, str],
    by: Sequence[str] = ("system",),
    confidence: float = 0.95,
    resamples: int = 2000,
    k: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (group, scorer): mean score and its interval, pass rate, pass@k, pass^k,
    then cost, latency and tokens for the group.

    The interval resamples cases (the cluster bootstrap: a case's repeats and prompts are
    averaged first). A pass/fail scorer with exactly one attempt per case gets Wilson's
    interval instead. pass@k and pass^k use each case's attempts (k defaults to the fewest
    attempts any case had, so every case counts); they are NaN for graded scorers.
    """
    by = list(by)
    rng = rng_for(seed)
    usage = _usage(rows, by)
    records = []
    for scorer, kind in scorers.items():
        per_case = case_scores(rows, scorer, by)
        for key, group in per_case.groupby(by, sort=False, observed=True):
            key = key if isinstance(key, tuple) else (key,)
            binary = kind == PASS
            single = bool((group["attempts"] == 1).all())
            if binary and single:
                interval = wilson_ci(int(group["passes"].sum()), len(group), confidence)
            else:
                interval = bootstrap_mean_ci(group["mean"].to_numpy(), confidence, resamples, rng)
            record = dict(zip(by, key, strict=True))
            n_attempts = group["attempts"].to_numpy()
            kk = k or int(n_attempts.min())
            record.update(
                scorer=scorer,
                kind=kind,
                n=len(group),
                attempts=int(n_attempts.sum()),
                mean=interval.estimate,
                ci_low=interval.low,
                ci_high=interval.high,
                ci_method=interval.method,
                pass_rate=float(group["passes"].sum() / n_attempts.sum()) if binary else np.nan,
                k=kk if binary else np.nan,
                pass_at_k=(
                    float(np.nanmean(pass_at_k(n_attempts, group["passes"].to_numpy(), kk)))
                    if binary
                    else np.nan
                ),
                pass_hat_k=(
                    float(np.nanmean(pass_hat_k(n_attempts, group["passes"].to_numpy(), kk)))
                    if binary
                    else np.nan
                ),
            )
            records.append(record)
    scores = pd.DataFrame.from_records(records)
    if scores.empty:
        return scores
    return scores.merge(usage, on=by, how="left")


def compare_pairs(
    rows: pd.DataFrame,
    scorers: dict[str, str],
    pairs: Sequence[tuple[str, str]],
    by: str = "system",
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (pair, scorer): b minus a on the cases both answered.

    The interval is a paired bootstrap over cases; the p-value is McNemar's when both have
    exactly one pass/fail outcome per case, else a sign-flip permutation test on per-case
    differences. `p_adjusted` is Holm-Bonferroni across all pairs of the same scorer.
    """
    rng = rng_for(seed)
    records = []
    for scorer, kind in scorers.items():
        wide = case_scores(rows, scorer, [by]).pivot(index="case_id", columns=by)
        first = len(records)
        for a, b in pairs:
            if ("mean", a) not in wide.columns or ("mean", b) not in wide.columns:
                continue
            shared = wide[[("mean", a), ("mean", b)]].dropna().index
            attempts = wide.loc[shared, [("attempts", a), ("attempts", b)]]
            binary = kind == PASS and bool((attempts == 1).all().all())
            result = paired_difference(
                wide.loc[shared, ("mean", a)].to_numpy(),
                wide.loc[shared, ("mean", b)].to_numpy(),
                binary=binary,
                confidence=confidence,
                resamples=resamples,
                seed=rng,
            )
            records.append({"a": a, "b": b, "scorer": scorer, **result.__dict__})
        family = records[first:]
        adjusted = holm_adjust(np.array([r["p_value"] for r in family]))
        for record, p in zip(family, adjusted, strict=True):
            record["p_adjusted"] = float(p)
            record["significant"] = bool(p < 1 - confidence)
    columns = [
        "a",
        "b",
        "scorer",
        "diff",
        "ci_low",
        "ci_high",
        "p_value",
        "p_adjusted",
        "significant",
        "test",
        "n",
        "wins",
        "ties",
        "losses",
    ]
    return pd.DataFrame.from_records(records, columns=columns)
