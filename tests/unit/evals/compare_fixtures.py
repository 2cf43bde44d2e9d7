"""Synthetic runs in the results layout (manifest.json, results.parquet, pairwise.parquet),
with known true quality per model, for the comparison and report tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def write_run(
    root: Path,
    run_id: str,
    quality: dict[str, float],
    cases: int = 60,
    repeats: int = 2,
    prompts: tuple[str, ...] = ("plain",),
    cost: dict[str, float] | None = None,
    outputs: dict[str, str] | None = None,
    pairwise: bool = True,
    errors: dict[str, int] | None = None,
    seed: int = 0,
) -> Path:
    """A run folder where model m passes case i with probability quality[m] shifted by the
    case's difficulty; scorer `exact` is pass/fail, `judge` graded. Returns the folder."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 0.15, cases)
    categories = ["math", "recall", None]
    rows = []
    for model, q in quality.items():
        failing = set(range((errors or {}).get(model, 0)))
        for prompt in prompts:
            for repeat in range(repeats):
                for i in range(cases):
                    p = float(np.clip(q + difficulty[i], 0.02, 0.98))
                    passed = float(rng.random() < p)
                    errored = i in failing and repeat == 0
                    text = (outputs or {}).get(model, f"answer {i} from {model}")
                    rows.append(
                        {
                            "run_id": run_id,
                            "case_id": f"case-{i:03d}",
                            "category": categories[i % 3],
                            "prompt": prompt,
                            "model": model,
                            "served_model": f"{model}-2026",
                            "repeat": repeat,
                            "input": f"question {i}?",
                            "reference": f"reference {i}",
                            "output": None if errored else text,
                            "error": "upstream_error: 502" if errored else None,
                            "prompt_tokens": 20 + i % 7,
                            "completion_tokens": 0 if errored else 30 + i % 11,
                            "cost_usd": (cost or {}).get(model, 0.001),
                            "latency_ms": float(rng.lognormal(np.log(200 + 300 * q), 0.3)),
                            "ttft_ms": float(rng.lognormal(np.log(50), 0.2)),
                            "score.exact": None if errored else passed,
                            "score_error.exact": None,
                            "score.judge": None
                            if errored
                            else float(np.clip(p + rng.normal(0, 0.1), 0, 1)),
                            "score_error.judge": None,
                        }
                    )
    folder = root / run_id
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "results.parquet", index=False)
    if pairwise and len(quality) > 1:
        verdicts = []
        models = list(quality)
        for i in range(cases):
            for a, b in zip(models, models[1:] + models[:1], strict=True):
                gap = quality[a] - quality[b]
                draw = rng.random()
                winner = "tie" if draw < 0.1 else ("a" if draw < 0.55 + gap else "b")
                verdicts.append(
                    {
                        "run_id": run_id,
                        "scorer": "pairwise",
                        "case_id": f"case-{i:03d}",
                        "prompt": prompts[0],
                        "repeat": 0,
                        "model_a": a,
                        "model_b": b,
                        "winner": winner,
                        "reason": "because",
                    }
                )
        pd.DataFrame(verdicts).to_parquet(folder / "pairwise.parquet", index=False)
    manifest = {
        "run_id": run_id,
        "name": f"synthetic {run_id}",
        "sweep": {"models": list(quality)},
        "sweep_hash": "0" * 16,
        "git_revision": "abc1234",
        "registry_version": 1,
        "started_at": "2026-12-03T07:00:00Z",
        "ended_at": "2026-12-03T07:05:00Z",
        "totals": {"rows": len(rows)},
        "scorers": {"exact": {"kind": "pass"}, "judge": {"kind": "score"}},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder
