"""Evaluation sweeps over the gateway's models: `llmgw eval run SWEEP.yaml` writes a run folder;
`load_run` reads it back as a DataFrame and its manifest."""

from evals.results import load_pairwise, load_run

__all__ = ["load_pairwise", "load_run"]
