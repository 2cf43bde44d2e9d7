"""A scorer of your own, named by import path (`package.module:function`), as pipeline steps
are: a function `(row: ScoreInput, **params) -> float | bool | Score | (float, reason)`,
sync or async."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

from evals.scorers.base import ModelCalls, Score, ScoreInput, Scorer


def import_object(path: str) -> Any:
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise ValueError(f"'{path}' is not an import path like package.module:function")
    target: Any = importlib.import_module(module)
    for part in attr.split("."):
        target = getattr(target, part)
    return target


def as_score(value: Any) -> Score:
    if isinstance(value, Score):
        return value
    reason = None
    if isinstance(value, tuple):
        value, reason = value
    if isinstance(value, bool):
        value = 1.0 if value else 0.0
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"a score must be in [0, 1], got {number}")
    return Score(number, reason=reason)


@dataclass
class Custom(Scorer):
    """Calls `function` (an import path) with the row and `params`."""

    type = "custom"
    function: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    kind_: str = "score"

    def __post_init__(self) -> None:
        self._fn = import_object(self.function)
        self.kind = self.kind_  # type: ignore[misc]

    @property
    def version(self) -> str:  # type: ignore[override]
        return str(getattr(self._fn, "version", self.function))

    async def score(self, row: ScoreInput, calls: ModelCalls | None) -> Score:
        value = self._fn(row, **self.params)
        if inspect.isawaitable(value):
            value = await value
        return as_score(value)
