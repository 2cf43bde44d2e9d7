"""The sweep file: what to run (dataset x prompts x models x repeats), how to score it, where
to write it. Parsed with pydantic; every error names the file, the field path and what was
expected, before any call is made."""

from __future__ import annotations

import hashlib
import json
import string
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.config import USE_CASES


class SweepError(ValueError):
    """A sweep that cannot run: `path` is the field (`prompts[0].template`), or '' for the file."""

    def __init__(self, message: str, path: str = "", source: str | None = None) -> None:
        self.path = path
        self.source = source
        where = ": ".join(p for p in (source, path) if p)
        super().__init__(f"{where}: {message}" if where else message)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSpec(_Strict):
    """Where the cases are and which fields hold the id, the input, the reference, the category."""

    path: str = Field(description="A JSONL, CSV or Parquet path or URI, or a built-in name.")
    id: str = "id"
    input: str = "input"
    reference: str | None = None
    category: str | None = None
    format: Literal["jsonl", "csv", "parquet"] | None = None


class PromptSpec(_Strict):
    """A named template over the dataset's fields (`{field}`), with an optional system prompt."""

    name: str
    template: str
    system: str | None = None

    def fields(self) -> set[str]:
        """The dataset fields the template and system prompt refer to."""
        names = set()
        for text in (self.template, self.system or ""):
            for _, field, _, _ in string.Formatter().parse(text):
                if field:
                    names.add(field.split(".")[0].split("[")[0])
        return names

    def render(self, case: dict[str, Any]) -> tuple[str | None, str]:
        """(system, user) for one case."""
        system = self.system.format(**case) if self.system else None
        return system, self.template.format(**case)


class Rubric(_Strict):
    """A judge's rubric: versioned, so scores from different rubric texts are never mixed."""

    name: str = "quality"
    version: str = "1"
    text: str = (
        "Rate how well the response answers the user's request: correct, complete and concise."
        " 1 is useless, 5 is excellent."
    )
    scale: tuple[int, int] = (1, 5)


class JudgeSpec(_Strict):
    """The model that judges, and the rubric it judges by."""

    model: str
    rubric: Rubric = Field(default_factory=Rubric)
    max_tokens: int = 256


class Limits(_Strict):
    max_cases: int | None = Field(default=None, gt=0)
    max_cost_usd: float | None = Field(default=None, gt=0)


class ScorerSpec(BaseModel):
    """One scorer: its `type`, an optional `name` (default: the type) and its own parameters."""

    model_config = ConfigDict(extra="allow")

    type: str
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.type

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Sweep(_Strict):
    """One sweep file, parsed."""

    name: str
    dataset: DatasetSpec
    prompts: list[PromptSpec] = Field(min_length=1)
    models: list[str] = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    repeats: int = Field(default=1, ge=1)
    scorers: list[ScorerSpec] = Field(default_factory=list)
    judge: JudgeSpec | None = None
    limits: Limits = Field(default_factory=Limits)
    concurrency: int = Field(default=16, ge=1, le=1024)
    requests_per_second: float | None = Field(
        default=None, gt=0, description="Per provider, across the sweep."
    )
    retries: int = Field(default=5, ge=0, le=20)
    timeout_s: float = Field(default=120.0, gt=0)
    workers: int = Field(default=1, ge=1, description="Ray Data actors making calls.")
    batch_size: int = Field(default=64, ge=1)
    output: str = "eval-runs"
    cache: bool | str = Field(
        default=False, description="Reuse responses (true: under $LLMGW_HOME; or a path)."
    )
    precision_scorer: str | None = None

    @field_validator("prompts", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @field_validator("scorers", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"type": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("models")
    @classmethod
    def _use_cases(cls, models: list[str]) -> list[str]:
        for model in models:
            if model.startswith("auto:") and model[5:] not in USE_CASES:
                raise ValueError(f"'{model}': a use-case route is auto:<{'|'.join(USE_CASES)}>")
        if len(set(models)) != len(models):
            raise ValueError("a model is named twice")
        return models

    def digest(self) -> str:
        """A hash of the parsed sweep: the same sweep, however written, hashes the same."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_sweep(data: Any, source: str | None = None) -> Sweep:
    """A `Sweep` from parsed YAML, its scorers checked too; `SweepError` names the field."""
    try:
        sweep = Sweep.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        message = first["msg"]
        if first["type"] == "missing":
            message = "required field is missing"
        elif first["type"] == "extra_forbidden":
            message = "unknown field"
        raise SweepError(message, _path(first["loc"]), source) from None
    names = [p.name for p in sweep.prompts]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise SweepError(f"prompt name '{name}' is used twice", f"prompts[{i}].name", source)
    from evals.scorers import check_specs

    check_specs(sweep, source)
    return sweep


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file (YAML)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise SweepError(f"cannot read the sweep file: {error.strerror}", "", str(path)) from None
    except yaml.YAMLError as error:
        raise SweepError(f"not valid YAML: {error}", "", str(path)) from None
    if not isinstance(data, dict):
        raise SweepError("expected a mapping at the top of the file", "", str(path))
    return parse_sweep(data, str(path))


def check_fields(sweep: Sweep, fields: list[str], source: str | None = None) -> None:
    """Every field the sweep names (dataset.id, .input, .reference, .category, and those the
    templates use) must be one of the dataset's fields."""
    known = set(fields)
    shown = ", ".join(fields[:20])
    for attr in ("id", "input", "reference", "category"):
        field = getattr(sweep.dataset, attr)
        if field is not None and field not in known:
            raise SweepError(
                f"field '{field}' is not in the dataset (its fields: {shown})",
                f"dataset.{attr}",
                source,
            )
    for i, prompt in enumerate(sweep.prompts):
        for field in sorted(prompt.fields() - known):
            raise SweepError(
                f"the template uses '{{{field}}}', which is not a dataset field (its fields: "
                f"{shown})",
                f"prompts[{i}].template",
                source,
            )
