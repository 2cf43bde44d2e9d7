"""Statistics for comparing models: plain, seeded functions over arrays and DataFrames."""

from evals.stats.bradley_terry import bradley_terry, win_rates
from evals.stats.intervals import Interval, bootstrap_mean_ci, bootstrap_means, wilson_ci
from evals.stats.paired import (
    PairedDifference,
    holm_adjust,
    mcnemar_p_value,
    paired_bootstrap_ci,
    paired_difference,
    sign_flip_p_value,
)
from evals.stats.pareto import pareto_frontier
from evals.stats.passk import pass_at_k, pass_hat_k
from evals.stats.summary import case_scores, compare_pairs, summarize

__all__ = [
    "Interval",
    "PairedDifference",
    "bootstrap_mean_ci",
    "bootstrap_means",
    "bradley_terry",
    "case_scores",
    "compare_pairs",
    "holm_adjust",
    "mcnemar_p_value",
    "paired_bootstrap_ci",
    "paired_difference",
    "pareto_frontier",
    "pass_at_k",
    "pass_hat_k",
    "sign_flip_p_value",
    "summarize",
    "wilson_ci",
    "win_rates",
]
