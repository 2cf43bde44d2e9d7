"""Scorers that call a model through the gateway: embedding similarity, an LLM judge with a
versioned rubric, and the pairwise judge (A against B, asked in both orders)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from evals.scorers.base import ModelCalls, Score, ScoreInput, Scorer, reference_of
from evals.sweep import Rubric

JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer"}, "reason": {"type": "string"}},
    "required": ["score", "reason"],
    "additionalProperties": False,
}
PAIRWISE_SCHEMA = {
    "type": "object",
    "properties": {"winner": {"enum": ["A", "B", "tie"]}, "reason": {"type": "string"}},
    "required": ["winner", "reason"],
    "additionalProperties": False,
}


def _needs(calls: ModelCalls | None) -> ModelCalls:
    if calls is None:
        raise RuntimeError("this scorer calls the gateway and has no client")
    return calls


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


@dataclass
class EmbeddingSimilarity(Scorer):
    """Cosine similarity of the output's and the reference's embeddings (from the gateway's
    `/v1/embeddings`), negative values clipped to 0."""

    type = "embedding"
    needs_reference = True
    model: str = ""

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("embedding needs a model")

    @property
    def version(self) -> str:  # type: ignore[override]
        return f"cosine:{self.model}"

    async def score(self, row: ScoreInput, calls: ModelCalls | None) -> Score:
        vectors, cost = await _needs(calls).embed(self.model, [row.output, reference_of(row)])
        return Score(max(0.0, min(1.0, cosine(vectors[0], vectors[1]))), cost_usd=cost)


@dataclass
class _RubricJudge(Scorer):
    """A judge model asked on a versioned rubric (the default one when none is given); the
    scorer's version is the rubric's."""

    model: str = ""
    rubric: Rubric | None = None
    max_tokens: int = 256

    @property
    def active_rubric(self) -> Rubric:
        return self.rubric or Rubric()

    @property
    def version(self) -> str:  # type: ignore[override]
        return f"{self.active_rubric.name}@{self.active_rubric.version}"


@dataclass
class Judge(_RubricJudge):
    """An LLM judge: the sweep's judge model rates the output on the rubric's scale, with a
    reason; the score is rescaled to [0, 1]. Its version is the rubric's."""

    type = "judge"

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"model": self.model, "rubric": self.active_rubric.model_dump()}

    def prompts(self, row: ScoreInput) -> tuple[str, str]:
        rubric = self.active_rubric
        low, high = rubric.scale
        system = (
            f"You are a strict evaluator. Rubric ({rubric.name} v{rubric.version}): "
            f"{rubric.text}\nAnswer in JSON: an integer score from {low} to {high} and a "
            "one-sentence reason."
        )
        parts = [f"[User request]\n{row.input}"]
        if row.reference is not None:
            parts.append(f"[Reference answer]\n{row.reference}")
        parts.append(f"[Response to rate]\n{row.output}")
        return system, "\n\n".join(parts)

    async def score(self, row: ScoreInput, calls: ModelCalls | None) -> Score:
        system, user = self.prompts(row)
        verdict, cost = await _needs(calls).judge(
            self.model, system, user, JUDGE_SCHEMA, self.max_tokens
        )
        low, high = self.active_rubric.scale
        raw = float(verdict["score"])
        value = (min(max(raw, low), high) - low) / (high - low)
        return Score(value, reason=str(verdict.get("reason", "")), cost_usd=cost)


@dataclass
class PairwiseJudge(_RubricJudge):
    """A against B on the same case, asked in both orders; a verdict that flips with the
    order is a tie. Writes `pairwise.parquet`, not a score column."""

    type = "pairwise"
    models: list[str] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "pairwise",
            "version": self.version,
            "model": self.model,
            "rubric": self.active_rubric.model_dump(),
        }

    async def _ask(
        self, calls: ModelCalls, question: str, first: str, second: str
    ) -> tuple[str, str, float]:
        rubric = self.active_rubric
        system = (
            f"You compare two responses to the same request. Rubric ({rubric.name} "
            f"v{rubric.version}): {rubric.text}\nAnswer in JSON: the winner (A, B or tie) "
            "and a one-sentence reason."
        )
        user = f"[User request]\n{question}\n\n[Response A]\n{first}\n\n[Response B]\n{second}"
        verdict, cost = await calls.judge(
            self.model, system, user, PAIRWISE_SCHEMA, self.max_tokens
        )
        return str(verdict.get("winner", "tie")), str(verdict.get("reason", "")), cost

    async def compare(
        self, question: str, a: str, b: str, calls: ModelCalls | None
    ) -> tuple[str, str, float]:
        """("a" | "b" | "tie", reason, cost): asked as (A=a, B=b) and as (A=b, B=a)."""
        calls = _needs(calls)
        first, reason1, cost1 = await self._ask(calls, question, a, b)
        second, reason2, cost2 = await self._ask(calls, question, b, a)
        straight = {"A": "a", "B": "b"}.get(first, "tie")
        swapped = {"A": "b", "B": "a"}.get(second, "tie")
        winner = straight if straight == swapped else "tie"
        reason = reason1 if winner != "tie" or straight == swapped else f"{reason1} | {reason2}"
        return winner, reason, cost1 + cost2
