"""What every scorer shares: one row in, one `Score` out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

Kind = Literal["pass", "score", "label"]


@dataclass(frozen=True)
class ScoreInput:
    """What a scorer sees of one row: the case's fields, the rendered input, the reference and
    the model's output."""

    case: dict[str, Any]
    input: str
    reference: str | None
    output: str
    model: str
    prompt: str


@dataclass(frozen=True)
class Score:
    """A value in [0, 1] (pass/fail scorers give exactly 0.0 or 1.0), with an optional reason
    (judges) and predicted label (classification)."""

    value: float
    reason: str | None = None
    label: str | None = None
    cost_usd: float = 0.0


class ModelCalls(Protocol):
    """The gateway calls that model-based scorers make (`evals.client.GatewayClient`)."""

    async def judge(
        self, model: str, system: str, user: str, schema: dict[str, Any], max_tokens: int
    ) -> tuple[dict[str, Any], float]: ...

    async def embed(self, model: str, texts: list[str]) -> tuple[list[list[float]], float]: ...


@dataclass
class Scorer:
    """Base of every scorer. Subclasses set `type`, `kind` and `version` and implement `measure`
    (local) or `score` (async, for scorers that call a model)."""

    type: ClassVar[str] = ""
    kind: ClassVar[Kind] = "score"
    version: ClassVar[str] = "1"
    needs_reference: ClassVar[bool] = False

    name: str = field(default="", kw_only=True)

    def measure(self, row: ScoreInput) -> Score:
        raise NotImplementedError

    async def score(self, row: ScoreInput, calls: ModelCalls | None) -> Score:
        return self.measure(row)

    def describe(self) -> dict[str, Any]:
        """What the manifest records of this scorer."""
        return {"kind": self.kind, "version": self.version, "type": self.type}


def passed(ok: bool) -> Score:
    return Score(1.0 if ok else 0.0)


def reference_of(row: ScoreInput) -> str:
    if row.reference is None:
        raise ValueError("this scorer needs a reference and the case has none")
    return row.reference
