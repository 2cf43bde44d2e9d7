"""`llmgw eval compare` and `llmgw eval report`: models side by side, with intervals.

These attach to `eval_app` from `gateway/cli/eval.py`; `gateway/cli/__init__.py` imports this
module so the decorators run.
"""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from gateway.cli.client import CLIError
from gateway.cli.eval import eval_app
from gateway.cli.lifecycle import _friendly, console, err

RunsArgument = Annotated[
    list[str], typer.Argument(help="Runs to compare: run ids (under --runs-dir) or run folders.")
]
BaselineOption = Annotated[
    str | None,
    typer.Option("--baseline", help="Compare every other run's models with this run's."),
]
ScorerOption = Annotated[
    str | None,
    typer.Option("--scorer", help="The primary scorer (default: the sweep's first scorer)."),
]
RunsDirOption = Annotated[
    str, typer.Option("--runs-dir", help="Where run ids are looked up (a sweep's output).")
]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap resamples.")]


class Format(str, Enum):
    table = "table"
    json = "json"


def _compare(runs: list[str], baseline: str | None, scorer: str | None, runs_dir: str, seed: int):  # type: ignore[no-untyped-def]
    from evals.compare import compare

    try:
        return compare(runs, baseline=baseline, scorer=scorer, runs_dir=runs_dir, seed=seed)
    except (FileNotFoundError, ValueError) as error:
        raise CLIError(str(error)) from None


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: NaN as null, numpy scalars as Python numbers."""
    return json.loads(frame.to_json(orient="records")) if not frame.empty else []


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}" if isinstance(value, float) else str(value)


def _print_tables(comparison: Any, regressed: pd.DataFrame | None) -> None:
    models = Table(title=f"Models (primary scorer {comparison.primary}; 95% CI)")
    for column in (
        "system", "scorer", "n", "mean", "95% CI", "pass rate", "pass@k", "pass^k",
        "cost USD", "USD/1k cases", "p50 ms", "p95 ms", "tokens out", "Pareto",
    ):  # fmt: skip
        models.add_column(column, justify="left" if column in ("system", "scorer") else "right")
    for r in comparison.models.to_dict("records"):
        models.add_row(
            r["system"], r["scorer"], str(r["n"]), _fmt(r["mean"]),
            f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]", _fmt(r["pass_rate"]),
            _fmt(r["pass_at_k"]), _fmt(r["pass_hat_k"]), _fmt(r["cost_usd"], 4),
            _fmt(r["cost_per_1k_cases"], 4), _fmt(r["latency_p50_ms"], 0),
            _fmt(r["latency_p95_ms"], 0), str(r["completion_tokens"]),
            "yes" if r["on_frontier"] else "",
        )  # fmt: skip
    console.print(models)
    if not comparison.pairs.empty:
        pairs = Table(title="Pairs: b - a on shared cases (Holm-adjusted across pairs)")
        for column in ("a", "b", "scorer", "diff", "95% CI", "p", "p (Holm)", "test", "W/T/L"):
            pairs.add_column(
                column, justify="left" if column in ("a", "b", "scorer", "test") else "right"
            )
        for r in comparison.pairs.to_dict("records"):
            mark = "*" if r["significant"] else ""
            pairs.add_row(
                r["a"], r["b"], r["scorer"], _fmt(r["diff"]) + mark,
                f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]", _fmt(r["p_value"], 4),
                _fmt(r["p_adjusted"], 4), r["test"], f"{r['wins']}/{r['ties']}/{r['losses']}",
            )  # fmt: skip
        console.print(pairs)
    if not comparison.ratings.empty:
        ratings = Table(title="Bradley-Terry ratings from the pairwise judge")
        for column in ("judge", "system", "rating", "95% CI", "games"):
            ratings.add_column(column)
        for r in comparison.ratings.to_dict("records"):
            ratings.add_row(
                r["scorer"], r["model"], _fmt(r["rating"], 0),
                f"[{_fmt(r['ci_low'], 0)}, {_fmt(r['ci_high'], 0)}]", str(r["games"]),
            )  # fmt: skip
        console.print(ratings)
    if regressed is not None and regressed.empty:
        console.print("[green]no significant regression against the baseline[/green]")


@eval_app.command("compare")
@_friendly
def compare_command(
    runs: RunsArgument,
    baseline: BaselineOption = None,
    output: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
    fail_below: Annotated[
        float | None,
        typer.Option(
            "--fail-below",
            help="With --baseline: exit 1 when a model's score drops significantly by more "
            "than this (the whole 95% interval of the drop beyond it).",
        ),
    ] = None,
    scorer: ScorerOption = None,
    runs_dir: RunsDirOption = "eval-runs",
    seed: SeedOption = 0,
) -> None:
    """Models side by side: scores with 95% intervals, pass@k, cost, latency; paired tests.

    Bradley-Terry ratings too when a pairwise judge ran. With --baseline and --fail-below,
    a regression gate for CI pipelines."""
    if fail_below is not None and baseline is None:
        raise CLIError("--fail-below needs --baseline RUN: the run the scores must not drop from")
    from evals.compare import regressions

    comparison = _compare(runs, baseline, scorer, runs_dir, seed)
    regressed = regressions(comparison, fail_below) if fail_below is not None else None
    if output is Format.json:
        document = {
            "runs": [r.run_id for r in comparison.runs],
            "baseline": comparison.baseline,
            "primary_scorer": comparison.primary,
            "scorers": comparison.scorers,
            "models": _records(comparison.models),
            "by_prompt": _records(comparison.by_prompt),
            "by_category": _records(comparison.by_category),
            "pairs": _records(comparison.pairs),
            "ratings": _records(comparison.ratings),
        }
        if regressed is not None:
            document["regressions"] = _records(regressed)
        typer.echo(json.dumps(document, indent=2))
    else:
        _print_tables(comparison, regressed)
    if regressed is not None and not regressed.empty:
        for r in regressed.to_dict("records"):
            err.print(
                f"[red]regression:[/red] {r['b']} scores {r['diff']:+.3f} on {r['scorer']} "
                f"against {r['a']} (95% CI [{r['ci_low']:.3f}, {r['ci_high']:.3f}], "
                f"Holm p {r['p_adjusted']:.4f}), beyond -{fail_below}",
                highlight=False,
            )
        raise typer.Exit(1)


@eval_app.command("report")
@_friendly
def report_command(
    runs: RunsArgument,
    html: Annotated[Path, typer.Option("--html", help="The HTML file to write.")],
    baseline: BaselineOption = None,
    scorer: ScorerOption = None,
    runs_dir: RunsDirOption = "eval-runs",
    title: Annotated[str | None, typer.Option(help="The report's title.")] = None,
    seed: SeedOption = 0,
) -> None:
    """One self-contained HTML file: tables, plots and every model's output side by side."""
    from evals.report import write_html

    comparison = _compare(runs, baseline, scorer, runs_dir, seed)
    path = write_html(comparison, html, title)
    console.print(f"report: {path} ({path.stat().st_size / 1024:,.0f} KiB)")
