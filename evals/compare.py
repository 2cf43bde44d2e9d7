"""Compare runs: load them, label each (run, model) as a system, and build every table the
CLI and the report show. `compare(...)` is the Python entry point; it returns DataFrames."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from evals.results import load_pairwise, load_run
from evals.stats import bradley_terry, compare_pairs, pareto_frontier, summarize, win_rates
from evals.stats.summary import PASS, case_scores, score_column

DEFAULT_RUNS_DIR = "eval-runs"
NO_CATEGORY = "(none)"


@dataclass
class Run:
    """One run read from disk: its rows, manifest and pairwise verdicts (None if no judge)."""

    location: str
    rows: pd.DataFrame
    manifest: dict[str, Any]
    pairwise: pd.DataFrame | None = None

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id") or os.path.basename(self.location.rstrip("/")))


@dataclass
class Comparison:
    """Every table of a comparison. `models`, `by_prompt` and `by_category` have one row per
    (system, scorer); `pairs` one per (pair, scorer); `ratings` one per (judge, model)."""

    runs: list[Run]
    scorers: dict[str, str]
    primary: str
    rows: pd.DataFrame
    models: pd.DataFrame
    by_prompt: pd.DataFrame
    by_category: pd.DataFrame
    pairs: pd.DataFrame
    ratings: pd.DataFrame
    pairwise: pd.DataFrame
    baseline: str | None = None
    systems: list[str] = field(default_factory=list)

    def win_rates(self) -> pd.DataFrame:
        """Row system's share of wins against the column system (ties half): from the
        pairwise judge's verdicts when there are any, else from per-case primary scores."""
        if not self.pairwise.empty:
            return win_rates(self.pairwise).reindex(index=self.systems, columns=self.systems)
        wide = case_scores(self.rows, self.primary, ["system"]).pivot(
            index="case_id", columns="system", values="mean"
        )
        table = pd.DataFrame(np.nan, index=self.systems, columns=self.systems)
        for a, b in itertools.permutations(wide.columns, 2):
            both = wide[[a, b]].dropna()
            if len(both):
                table.loc[a, b] = float(((both[a] > both[b]) + 0.5 * (both[a] == both[b])).mean())
        return table


def load(run: str, runs_dir: str = DEFAULT_RUNS_DIR) -> Run:
    """A run by folder (local path or URI) or by id under `runs_dir`."""
    candidates = [run] if ("://" in run or os.path.isdir(run)) else []
    candidates.append(os.path.join(runs_dir, run))
    for location in candidates:
        try:
            rows, manifest = load_run(location)
        except FileNotFoundError:
            continue
        return Run(location, rows, manifest, load_pairwise(location))
    raise FileNotFoundError(
        f"no run {run!r}: neither a run folder nor a run id under {runs_dir!r} "
        "(a run folder holds manifest.json and results.parquet)"
    )


def _scorers(runs: Sequence[Run], rows: pd.DataFrame) -> dict[str, str]:
    """Scorer name -> kind, in the manifests' order, for scorers with a score column."""
    kinds: dict[str, str] = {}
    for run in runs:
        for name, spec in (run.manifest.get("scorers") or {}).items():
            kind = spec.get("kind", "score") if isinstance(spec, dict) else str(spec)
            kinds.setdefault(name, kind)
    for column in rows.columns:
        if column.startswith("score.") and column[6:] not in kinds:
            values = rows[column].dropna()
            kinds[column[6:]] = PASS if values.isin([0.0, 1.0]).all() else "score"
    return {n: k for n, k in kinds.items() if score_column(n) in rows.columns}


def _label_systems(runs: Sequence[Run]) -> pd.DataFrame:
    """All runs' rows with a `system` column: the model's name, or `model@run_id` when the
    same model appears in more than one run."""
    frames = [run.rows.assign(run_id=run.run_id) for run in runs]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    runs_per_model = rows.groupby("model")["run_id"].nunique()
    shared = set(runs_per_model[runs_per_model > 1].index)
    rows["system"] = [
        f"{m}@{r}" if m in shared else m for m, r in zip(rows["model"], rows["run_id"], strict=True)
    ]
    return rows


def _prepare(rows: pd.DataFrame, scorers: dict[str, str], errors_fail: bool) -> pd.DataFrame:
    """A call that failed scores 0 (it did not answer) unless `errors_fail` is off; a
    scorer that failed on a real answer leaves the row out of that scorer's figures."""
    rows = rows.copy()
    rows["case_id"] = rows["case_id"].astype(str)
    rows["category"] = rows["category"].fillna(NO_CATEGORY) if "category" in rows else NO_CATEGORY
    for column in ("cost_usd", "latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens"):
        rows[column] = pd.to_numeric(rows.get(column), errors="coerce")
    if "error" not in rows:
        rows["error"] = None
    if errors_fail:
        failed = rows["error"].notna()
        for name in scorers:
            col = score_column(name)
            rows.loc[failed & rows[col].isna(), col] = 0.0
    return rows


def _pairs_to_compare(
    rows: pd.DataFrame, systems: list[str], baseline_run: str | None
) -> list[tuple[str, str]]:
    if baseline_run is None:
        return list(itertools.combinations(systems, 2))
    owner = rows.drop_duplicates("system").set_index("system")[["run_id", "model"]]
    base = [s for s in systems if owner.loc[s, "run_id"] == baseline_run]
    pairs = []
    for system in systems:
        if system in base:
            continue
        same = [b for b in base if owner.loc[b, "model"] == owner.loc[system, "model"]]
        pairs += [(b, system) for b in (same or base)]
    return pairs


def _pairwise(runs: Sequence[Run], rows: pd.DataFrame) -> pd.DataFrame:
    """Every run's pairwise verdicts with models renamed to system labels."""
    label = rows.drop_duplicates(["run_id", "model"]).set_index(["run_id", "model"])["system"]
    frames = []
    for run in runs:
        if run.pairwise is None or run.pairwise.empty:
            continue
        frame = run.pairwise.assign(run_id=run.run_id)
        if "scorer" not in frame:
            frame["scorer"] = "pairwise"
        for side in ("model_a", "model_b"):
            frame[side] = [label.get((run.run_id, m), m) for m in frame[side]]
        frame["case_id"] = frame["case_id"].astype(str)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def compare(
    runs: Sequence[str | Run],
    baseline: str | Run | None = None,
    scorer: str | None = None,
    runs_dir: str = DEFAULT_RUNS_DIR,
    confidence: float = 0.95,
    resamples: int = 2000,
    k: int | None = None,
    errors_fail: bool = True,
    seed: int = 0,
) -> Comparison:
    """Compare the models of one or more runs (ids, folders or loaded `Run`s).

    With `baseline`, each system is compared with the baseline run's system of the same model
    (or every baseline system when none shares its model); without, every pair is compared.
    `scorer` picks the primary scorer (default: the first in the manifest) for the frontier
    and the win rates; the tables cover every scorer.
    """
    loaded = [r if isinstance(r, Run) else load(r, runs_dir) for r in runs]
    baseline_run = None
    if baseline is not None:
        base = baseline if isinstance(baseline, Run) else load(baseline, runs_dir)
        baseline_run = base.run_id
        if all(r.run_id != base.run_id for r in loaded):
            loaded.insert(0, base)
    if not loaded:
        raise ValueError("compare needs at least one run")
    rows = _label_systems(loaded)
    scorers = _scorers(loaded, rows)
    if not scorers:
        raise ValueError("the runs have no score columns (score.<scorer>) to compare")
    if scorer is not None and scorer not in scorers:
        raise ValueError(f"no scorer {scorer!r} in the runs; they have {', '.join(scorers)}")
    primary = scorer or next(iter(scorers))
    rows = _prepare(rows, scorers, errors_fail)
    systems = list(dict.fromkeys(rows["system"]))
    options = {"confidence": confidence, "resamples": resamples, "seed": seed}

    models = summarize(rows, scorers, by=["system"], k=k, **options)
    owner = rows.drop_duplicates("system").set_index("system")[["run_id", "model"]]
    models = models.join(owner, on="system")
    models["on_frontier"] = False
    for _, group in models.groupby("scorer", sort=False):
        mask = pareto_frontier(group["cost_per_1k_cases"].to_numpy(), group["mean"].to_numpy())
        models.loc[group.index, "on_frontier"] = mask

    pairs = compare_pairs(rows, scorers, _pairs_to_compare(rows, systems, baseline_run), **options)
    pairs["baseline"] = baseline_run is not None
    pairwise = _pairwise(loaded, rows)
    ratings = pd.DataFrame()
    if not pairwise.empty:
        # One fit per (judge, run): a judge compares models within its run only, so models of
        # different runs never meet and their ratings would share no scale.
        ratings = pd.concat(
            [
                bradley_terry(group, confidence, seed=seed).assign(scorer=judge, run_id=run_id)
                for (judge, run_id), group in pairwise.groupby(["scorer", "run_id"], sort=False)
            ],
            ignore_index=True,
        )
    return Comparison(
        runs=loaded,
        scorers=scorers,
        primary=primary,
        rows=rows,
        models=models,
        by_prompt=summarize(rows, scorers, by=["system", "prompt"], k=k, **options),
        by_category=summarize(rows, scorers, by=["system", "category"], k=k, **options),
        pairs=pairs,
        ratings=ratings,
        pairwise=pairwise,
        baseline=baseline_run,
        systems=systems,
    )


def regressions(
    comparison: Comparison, fail_below: float, scorer: str | None = None
) -> pd.DataFrame:
    """Baseline pairs where the candidate's score (the primary scorer's unless `scorer` says)
    fell by more than `fail_below`, and significantly so: the whole confidence interval of
    the difference lies below -fail_below and the Holm-adjusted p-value is under the
    significance level."""
    pairs = comparison.pairs
    if comparison.baseline is None or pairs.empty:
        return pairs.iloc[0:0]
    gated = pairs[pairs["scorer"] == (scorer or comparison.primary)]
    return gated[(gated["ci_high"] < -fail_below) & gated["significant"]].reset_index(drop=True)
