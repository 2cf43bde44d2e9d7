"""The sweep file: a bad one fails with the field path and what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from evals.datasets import BUILTIN, fields_of, load_cases
from evals.sweep import SweepError, check_fields, load_sweep, parse_sweep

EXAMPLES = Path(__file__).parents[3] / "evals" / "examples"


def sweep(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "dataset": {"path": "chat", "id": "id", "input": "input", "reference": "reference"},
        "prompts": [{"name": "p", "template": "{input}"}],
        "models": ["sim-fast"],
        "scorers": ["exact_match"],
    } | overrides


def error_of(data: dict[str, Any]) -> SweepError:
    with pytest.raises(SweepError) as caught:
        parse_sweep(data, "s.yaml")
    return caught.value


@pytest.mark.parametrize(
    ("overrides", "path", "words"),
    [
        ({"scorers": ["exact_match", "bleu"]}, "scorers[1].type", "unknown scorer 'bleu'"),
        ({"scorers": [{"type": "regex"}]}, "scorers[0]", "regex needs a pattern"),
        ({"scorers": [{"type": "regex", "pattern": "("}]}, "scorers[0]", "error"),
        ({"scorers": [{"type": "contains", "vale": "x"}]}, "scorers[0].vale", "not a parameter"),
        ({"scorers": ["judge"]}, "scorers[0]", "needs a judge"),
        ({"scorers": [{"type": "custom", "function": "nope.nope:f"}]}, "scorers[0]", "nope"),
        ({"models": ["auto:poetry"]}, "models", "auto:<chat|"),
        ({"models": []}, "models", "at least 1"),
        ({"repeats": 0}, "repeats", "greater than or equal to 1"),
        ({"prompts": [{"name": "p"}]}, "prompts[0].template", "required field is missing"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"limits": {"max_cost_usd": -1}}, "limits.max_cost_usd", "greater than 0"),
        (
            {"prompts": [{"name": "p", "template": "a"}, {"name": "p", "template": "b"}]},
            "prompts[1].name",
            "used twice",
        ),
        (
            {"dataset": {"path": "chat", "input": "input"}},
            "scorers[0]",
            "set dataset.reference",
        ),
    ],
)
def test_bad_sweeps_name_the_field(overrides: dict[str, Any], path: str, words: str) -> None:
    error = error_of(sweep(**overrides))
    assert error.path == path
    assert words in str(error) and str(error).startswith("s.yaml: ")


def test_fields_the_dataset_lacks_are_named() -> None:
    parsed = parse_sweep(sweep(prompts=[{"name": "p", "template": "{question}"}]))
    with pytest.raises(SweepError, match=r"prompts\[0\]\.template.*'\{question\}'"):
        check_fields(parsed, ["id", "input", "reference"])
    parsed = parse_sweep(sweep(dataset={"path": "chat", "input": "q", "reference": "reference"}))
    with pytest.raises(SweepError, match=r"dataset\.input: field 'q' is not in the dataset"):
        check_fields(parsed, ["id", "input", "reference"])


def test_the_hash_ignores_how_the_file_is_written() -> None:
    a = parse_sweep(sweep(scorers=["exact_match"]))
    b = parse_sweep(sweep(scorers=[{"type": "exact_match"}]))
    assert a.digest() == b.digest()
    assert a.digest() != parse_sweep(sweep(repeats=2)).digest()


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(SweepError, match=r"s\.yaml: not valid YAML"):
        load_sweep(path)


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_examples_parse_and_match_their_datasets(example: Path) -> None:
    parsed = load_sweep(example)
    cases = load_cases(parsed.dataset.path)
    check_fields(parsed, fields_of(cases))


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_datasets_have_fifty_referenced_cases(name: str) -> None:
    cases = load_cases(name)
    assert len(cases) >= 50
    assert len({c["id"] for c in cases}) == len(cases)
    assert all(c["input"] and (c.get("reference") or c.get("label")) for c in cases)


def test_datasets_from_csv_and_parquet(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"id": ["a", "b"], "input": ["x", "y"]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    for name in ("d.csv", "d.parquet"):
        assert load_cases(str(tmp_path / name)) == frame.to_dict(orient="records")
    (tmp_path / "d.txt").write_text("")
    with pytest.raises(ValueError, match="cannot tell the format"):
        load_cases(str(tmp_path / "d.txt"))
    assert yaml  # the examples are YAML too
