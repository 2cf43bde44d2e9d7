"""Scorers over text: exact match, contains, regex, numeric tolerance, classification label,
ROUGE-L (Google's `rouge-score`) and token F1."""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from evals.scorers.base import Score, ScoreInput, Scorer, passed, reference_of

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBER = re.compile(r"[-+]?\d[\d,]*\.?\d*(?:[eE][-+]?\d+)?|[-+]?\.\d+")


def normalise(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", text).split())


@dataclass
class ExactMatch(Scorer):
    """Output equals the reference once both are normalised."""

    type = "exact_match"
    kind = "pass"
    needs_reference = True

    def measure(self, row: ScoreInput) -> Score:
        return passed(normalise(row.output) == normalise(reference_of(row)))


@dataclass
class Contains(Scorer):
    """Output contains `value` (or the reference when no value is given), case-insensitive."""

    type = "contains"
    kind = "pass"
    value: str | None = None
    case_sensitive: bool = False

    def measure(self, row: ScoreInput) -> Score:
        needle = self.value if self.value is not None else reference_of(row)
        hay = row.output
        if not self.case_sensitive:
            needle, hay = needle.lower(), hay.lower()
        return passed(needle in hay)


@dataclass
class Regex(Scorer):
    """Output matches `pattern` (re.search)."""

    type = "regex"
    kind = "pass"
    pattern: str = ""
    ignore_case: bool = False

    def __post_init__(self) -> None:
        if not self.pattern:
            raise ValueError("regex needs a pattern")
        re.compile(self.pattern)

    @cached_property
    def _compiled(self) -> re.Pattern[str]:
        return re.compile(self.pattern, re.IGNORECASE if self.ignore_case else 0)

    def measure(self, row: ScoreInput) -> Score:
        return passed(self._compiled.search(row.output) is not None)


@dataclass
class Numeric(Scorer):
    """The first number in the output is within `tolerance` of the reference (absolute, or
    relative to the reference when `relative`)."""

    type = "numeric"
    kind = "pass"
    needs_reference = True
    tolerance: float = 1e-6
    relative: bool = False

    def measure(self, row: ScoreInput) -> Score:
        expected = float(reference_of(row).replace(",", ""))
        found = _NUMBER.search(row.output)
        if found is None:
            return Score(0.0, reason="no number in the output")
        value = float(found.group().replace(",", ""))
        allowed = self.tolerance * (abs(expected) if self.relative else 1.0)
        return passed(abs(value - expected) <= allowed)


@dataclass
class Label(Scorer):
    """Classification: the predicted label is the first of `labels` the output names (or the
    normalised output itself); 1.0 when it is the reference label. Macro-F1 is an aggregate
    over the `label.<name>` column (`evals.scorers.macro_f1`)."""

    type = "label"
    kind = "label"
    needs_reference = True
    labels: list[str] = field(default_factory=list)

    def predict(self, output: str) -> str:
        text = normalise(output)
        hits = [
            (m.start(), label)
            for label in self.labels
            if (m := re.search(rf"\b{re.escape(normalise(label))}\b", text))
        ]
        return min(hits)[1] if hits else text

    def measure(self, row: ScoreInput) -> Score:
        predicted = self.predict(row.output)
        expected = reference_of(row)
        return Score(float(normalise(predicted) == normalise(expected)), label=predicted)


@dataclass
class RougeL(Scorer):
    """ROUGE-L F-measure against the reference (Google's rouge-score, with stemming)."""

    type = "rouge_l"
    version = "rouge-score-0.1"
    needs_reference = True

    @cached_property
    def _scorer(self) -> Any:
        from rouge_score import rouge_scorer

        return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)

    def measure(self, row: ScoreInput) -> Score:
        result = self._scorer.score(reference_of(row), row.output)
        return Score(float(result["rougeL"].fmeasure))


@dataclass
class TokenF1(Scorer):
    """SQuAD's token-overlap F1 between the normalised output and reference."""

    type = "token_f1"
    needs_reference = True

    def measure(self, row: ScoreInput) -> Score:
        predicted = normalise(row.output).split()
        expected = normalise(reference_of(row)).split()
        if not predicted or not expected:
            return Score(float(predicted == expected))
        common = sum((Counter(predicted) & Counter(expected)).values())
        if common == 0:
            return Score(0.0)
        precision, recall = common / len(predicted), common / len(expected)
        return Score(2 * precision * recall / (precision + recall))
