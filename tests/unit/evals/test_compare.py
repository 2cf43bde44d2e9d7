"""evals.compare and `llmgw eval compare` over synthetic runs in the results layout."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import evals
from evals.compare import load, regressions
from gateway.cli import app
from tests.unit.evals.compare_fixtures import write_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    write_run(
        root,
        "base",
        {"small": 0.45, "big": 0.75, "mid": 0.6},
        cases=150,
        cost={"big": 0.01, "mid": 0.002, "small": 0.0005},
        errors={"small": 4},
        prompts=("plain", "cot"),
    )
    # The same three models later: big got much worse, the others did not change.
    write_run(root, "worse", {"small": 0.45, "big": 0.45, "mid": 0.6}, cases=150, seed=1)
    return root


def test_python_compare_returns_dataframes_per_model_scorer_and_pair(runs: Path) -> None:
    comparison = evals.compare(["base"], runs_dir=str(runs))
    models = comparison.models.set_index(["system", "scorer"])
    assert set(models.index) == {
        (m, s) for m in ("small", "big", "mid") for s in ("exact", "judge")
    }
    big = models.loc[("big", "exact")]
    assert big.ci_low < big["mean"] < big.ci_high
    assert big.n == 150 and big.attempts == 150 * 2 * 2
    assert big.cost_usd == pytest.approx(0.01 * 600)
    assert big.cost_per_1k_cases == pytest.approx(10.0)
    assert big.latency_p50_ms < big.latency_p95_ms
    assert 0 <= big.pass_hat_k <= big.pass_rate <= big.pass_at_k <= 1
    assert (
        models.loc[("small", "judge"), "pass_at_k"] != models.loc[("small", "judge"), "pass_at_k"]
    )
    # Every pair of the three, per scorer; b - a.
    assert len(comparison.pairs) == 3 * 2
    pair = comparison.pairs.set_index(["a", "b", "scorer"]).loc[("small", "big", "exact")]
    assert pair["diff"] > 0.2 and pair.significant and pair.p_adjusted >= pair.p_value
    assert pair.wins + pair.ties + pair.losses == pair.n == 150
    # The cheapest and the best are on the frontier.
    assert comparison.models.query("scorer == 'exact'").set_index("system").on_frontier["small"]
    assert comparison.models.query("scorer == 'exact'").set_index("system").on_frontier["big"]
    # A pairwise judge ran: Bradley-Terry puts the best model first.
    assert comparison.ratings["model"].iloc[0] == "big"
    assert set(comparison.by_prompt["prompt"]) == {"plain", "cot"}
    assert set(comparison.by_category["category"]) == {"math", "recall", "(none)"}


def test_failed_calls_count_as_failures_unless_asked_otherwise(runs: Path) -> None:
    counted = evals.compare(["base"], runs_dir=str(runs), resamples=200)
    dropped = evals.compare(["base"], runs_dir=str(runs), resamples=200, errors_fail=False)
    small = counted.models.set_index(["system", "scorer"]).loc[("small", "exact")]
    small_dropped = dropped.models.set_index(["system", "scorer"]).loc[("small", "exact")]
    # 4 cases failed in the first repeat of each of the 2 prompts.
    assert small.errors == 8 and small.attempts == 600
    assert small_dropped.attempts == 592
    assert small["mean"] < small_dropped["mean"]


def test_runs_load_by_folder_or_id_and_unknown_runs_are_named(runs: Path) -> None:
    assert load(str(runs / "base")).run_id == load("base", str(runs)).run_id == "base"
    with pytest.raises(FileNotFoundError, match="no run 'nope'"):
        load("nope", str(runs))


def test_baseline_pairs_each_model_with_itself_and_the_gate_finds_the_drop(runs: Path) -> None:
    comparison = evals.compare([str(runs / "worse")], baseline=str(runs / "base"))
    exact = comparison.pairs[comparison.pairs.scorer == "exact"]
    assert sorted(zip(exact.a, exact.b, strict=True)) == [
        ("big@base", "big@worse"),
        ("mid@base", "mid@worse"),
        ("small@base", "small@worse"),
    ]
    # Each run's judge rated its own models: one Bradley-Terry scale per run, mean 1000.
    for _, ratings in comparison.ratings.groupby("run_id"):
        assert len(ratings) == 3 and ratings["rating"].mean() == pytest.approx(1000)
    failed = regressions(comparison, 0.02)
    assert failed["b"].tolist() == ["big@worse"]
    assert regressions(comparison, 0.5).empty


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["eval", *args])
    return result.exit_code, result.output


def test_cli_json_has_the_documented_fields(runs: Path) -> None:
    code, output = _cli("compare", "base", "--runs-dir", str(runs), "--format", "json")
    assert code == 0, output
    document = json.loads(output)
    for model in document["models"]:
        assert {"system", "model", "scorer", "mean", "ci_low", "ci_high", "n", "cost_usd"} <= set(
            model
        )
    for pair in document["pairs"]:
        assert {"a", "b", "diff", "ci_low", "ci_high", "p_value", "p_adjusted"} <= set(pair)
    assert document["primary_scorer"] == "exact"
    assert document["ratings"][0]["model"] == "big"


def test_cli_gate_exits_1_on_a_significant_drop_and_0_otherwise(runs: Path) -> None:
    gate = ("compare", "worse", "--baseline", "base", "--runs-dir", str(runs))
    code, output = _cli(*gate, "--fail-below", "0.02")
    assert code == 1
    assert "regression: big@worse" in output
    code, output = _cli(*gate, "--fail-below", "0.5")
    assert code == 0, output
    assert "no significant regression" in output
    code, output = _cli("compare", "worse", "--runs-dir", str(runs), "--fail-below", "0.02")
    assert code == 1 and "--fail-below needs --baseline" in output


def test_cli_table_names_models_and_unknown_runs(runs: Path) -> None:
    code, output = _cli("compare", "base", "--runs-dir", str(runs))
    assert code == 0 and "big" in output and "Bradley-Terry" in output
    assert "By prompt" in output and "By category" in output
    code, output = _cli("compare", "missing", "--runs-dir", str(runs))
    assert code == 1 and "no run 'missing'" in output


def test_one_pass_fail_outcome_per_case_gets_wilson_and_mcnemar(tmp_path: Path) -> None:
    write_run(tmp_path, "single", {"x": 0.4, "y": 0.7}, cases=80, repeats=1, pairwise=False)
    comparison = evals.compare([str(tmp_path / "single")])
    exact = comparison.models[comparison.models.scorer == "exact"]
    assert set(exact.ci_method) == {"wilson"}
    assert comparison.pairs.set_index("scorer").loc["exact", "test"] in {"mcnemar", "mcnemar-exact"}
    assert comparison.ratings.empty
    assert isinstance(comparison.win_rates(), pd.DataFrame)


def test_a_minimal_run_made_elsewhere_compares(tmp_path: Path) -> None:
    """Only the key columns, an output and a score: the rest of the layout is optional."""
    folder = tmp_path / "mini"
    folder.mkdir()
    rows = [
        {"run_id": "mini", "case_id": str(i), "prompt": "p", "model": m, "repeat": 0,
         "output": "x", "score.ok": float((i + j) % 2)}
        for i in range(20)
        for j, m in enumerate(["a", "b"])
    ]  # fmt: skip
    pd.DataFrame(rows).to_parquet(folder / "results.parquet")
    (folder / "manifest.json").write_text(json.dumps({"run_id": "mini"}))
    comparison = evals.compare([str(folder)], resamples=100)
    assert comparison.scorers == {"ok": "pass"}  # inferred: every score is 0 or 1
    assert comparison.models["mean"].tolist() == [0.5, 0.5]
    assert comparison.pairs.loc[0, "wins"] == comparison.pairs.loc[0, "losses"] == 10
