"""What routing decided: the ordered candidates to try, and why each other model was left out."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config import ModelConfig


# Not frozen: a frozen dataclass's __init__ costs a third of a microsecond more, paid for
# every candidate of every request.
@dataclass(slots=True)
class Candidate:
    """A model to try, the figure its strategy ranked it by, and a human-readable why.

    `score` is quality (capability, preference), blended $/Mtok (cost), p50 ms (latency,
    inf when unmeasured) or the hybrid score (hybrid, tenant); 0 for a named model's chain.
    """

    model: ModelConfig
    score: float
    reason: str

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def provider(self) -> str:
        return self.model.provider


@dataclass(slots=True)
class RouteDecision:
    """The fallback chain for one request, in the order to try it.

    `rejected` lists (model name, why) for models left out; it is complete only when the
    decision was made with `explain=True` (a named model's chain always records its skips).
    """

    strategy: str
    candidates: list[Candidate]
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def names(self) -> list[str]:
        """The candidates' model names, in order."""
        return [candidate.model.name for candidate in self.candidates]
