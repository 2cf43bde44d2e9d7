"""Evaluation sweeps over the gateway's models: `llmgw eval run SWEEP.yaml` writes a run folder;
`load_run` reads it back as a DataFrame and its manifest."""

# `evals.compare` is the function from here on; its module stays importable by name
# (`from evals.compare import regressions`).
from evals.compare import compare
from evals.results import load_pairwise, load_run

__all__ = ["compare", "load_pairwise", "load_run"]
