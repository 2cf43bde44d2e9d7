"""Custom scorers named by import path in the tests' sweeps."""

from __future__ import annotations

from evals.scorers import ScoreInput


def short(row: ScoreInput, limit: int = 5) -> bool:
    return len(row.output.split()) <= limit


async def half(row: ScoreInput) -> tuple[float, str]:
    return 0.5, "always half"


def broken(row: ScoreInput) -> float:
    raise RuntimeError("this scorer is broken")
