"""Scorers, named in the sweep file by `type`; a custom one is an import path."""

from __future__ import annotations

import dataclasses

import pandas as pd

from evals.scorers.base import Score, ScoreInput, Scorer
from evals.scorers.custom import Custom
from evals.scorers.model import EmbeddingSimilarity, Judge, PairwiseJudge
from evals.scorers.structured import JsonSchema, JsonValid
from evals.scorers.text import Contains, ExactMatch, Label, Numeric, Regex, RougeL, TokenF1
from evals.sweep import ScorerSpec, Sweep, SweepError

TYPES: dict[str, type[Scorer]] = {
    cls.type: cls
    for cls in (
        ExactMatch,
        Contains,
        Regex,
        Numeric,
        Label,
        RougeL,
        TokenF1,
        JsonValid,
        JsonSchema,
        EmbeddingSimilarity,
        Judge,
        PairwiseJudge,
        Custom,
    )
}
JUDGED = {"judge", "pairwise"}

__all__ = ["TYPES", "Score", "ScoreInput", "Scorer", "build", "check_specs", "macro_f1"]


def build(spec: ScorerSpec, sweep: Sweep) -> Scorer:
    """The scorer a spec names; a judge takes the sweep's judge model and rubric by default."""
    cls = TYPES[spec.type]
    params = spec.params
    if spec.type in JUDGED and sweep.judge is not None:
        params.setdefault("model", sweep.judge.model)
        params.setdefault("rubric", sweep.judge.rubric)
        params.setdefault("max_tokens", sweep.judge.max_tokens)
    if spec.type == "custom" and "kind" in params:
        params["kind_"] = params.pop("kind")
    if isinstance(params.get("rubric"), dict):
        from evals.sweep import Rubric

        params["rubric"] = Rubric.model_validate(params["rubric"])
    scorer = cls(**params)
    scorer.name = spec.label
    return scorer


def check_specs(sweep: Sweep, source: str | None = None) -> None:
    """Every scorer's type is known, its parameters are its own, and it builds."""
    names: set[str] = set()
    for i, spec in enumerate(sweep.scorers):
        path = f"scorers[{i}]"
        if spec.type not in TYPES:
            raise SweepError(
                f"unknown scorer '{spec.type}' (expected one of: {', '.join(sorted(TYPES))})",
                f"{path}.type",
                source,
            )
        if spec.label in names:
            raise SweepError(f"scorer name '{spec.label}' is used twice", f"{path}.name", source)
        names.add(spec.label)
        cls = TYPES[spec.type]
        allowed = {f.name for f in dataclasses.fields(cls) if f.name not in ("name", "kind_")}
        allowed |= {"kind"} if spec.type == "custom" else set()
        for param in spec.params:
            if param not in allowed:
                raise SweepError(
                    f"'{param}' is not a parameter of {spec.type} "
                    f"(expected: {', '.join(sorted(allowed)) or 'none'})",
                    f"{path}.{param}",
                    source,
                )
        if spec.type in JUDGED and sweep.judge is None and "model" not in spec.params:
            raise SweepError(
                f"a {spec.type} scorer needs a judge: add `judge: {{model: ...}}`", path, source
            )
        if cls.needs_reference and sweep.dataset.reference is None:
            raise SweepError(
                f"{spec.type} compares with a reference: set dataset.reference",
                path,
                source,
            )
        try:
            build(spec, sweep)
        except Exception as error:  # a bad regex, schema or import path
            raise SweepError(f"{type(error).__name__}: {error}", path, source) from None
    if sweep.precision_scorer is not None and sweep.precision_scorer not in names:
        raise SweepError(
            f"'{sweep.precision_scorer}' is not one of the sweep's scorers",
            "precision_scorer",
            source,
        )


def macro_f1(results: pd.DataFrame, scorer: str) -> float:
    """Macro-averaged F1 of a `label` scorer's predictions (`label.<scorer>`) against the
    references, over the rows that did not error: the mean of each reference label's F1."""
    rows = results[results["error"].isna() & results[f"label.{scorer}"].notna()]
    truth = rows["reference"].astype(str).map(str.lower).str.strip()
    predicted = rows[f"label.{scorer}"].astype(str).map(str.lower).str.strip()
    scores = []
    for label in sorted(set(truth)):
        tp = int(((predicted == label) & (truth == label)).sum())
        fp = int(((predicted == label) & (truth != label)).sum())
        fn = int(((predicted != label) & (truth == label)).sum())
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else float("nan")
