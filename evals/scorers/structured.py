"""Scorers over structured output: valid JSON, and JSON that satisfies a JSON Schema."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from evals.scorers.base import Score, ScoreInput, Scorer, passed

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def parse_json(text: str) -> Any:
    """The JSON value in `text`, allowing one Markdown code fence around it."""
    match = _FENCE.match(text)
    return json.loads(match.group(1) if match else text)


@dataclass
class JsonValid(Scorer):
    """Output parses as JSON."""

    type = "json_valid"
    kind = "pass"

    def measure(self, row: ScoreInput) -> Score:
        try:
            parse_json(row.output)
        except ValueError as error:
            return Score(0.0, reason=f"not JSON: {error}")
        return passed(True)


@dataclass
class JsonSchema(Scorer):
    """Output is JSON that satisfies `schema` (Draft 2020-12)."""

    type = "json_schema"
    kind = "pass"
    schema: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        jsonschema.Draft202012Validator.check_schema(self.schema)
        self._validator = jsonschema.Draft202012Validator(self.schema)

    def measure(self, row: ScoreInput) -> Score:
        try:
            value = parse_json(row.output)
        except ValueError as error:
            return Score(0.0, reason=f"not JSON: {error}")
        problem = next(iter(self._validator.iter_errors(value)), None)
        return Score(0.0, reason=problem.message) if problem else passed(True)
