"""`llmgw eval compare` and `llmgw eval report`: models side by side, with intervals.

These attach to `eval_app` from `gateway/cli/eval.py`; `gateway/cli/__init__.py` imports this
module so the decorators run.
"""

from __future__ import annotations

import json
import math
from datetime import UTC
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from gateway.cli.client import CLIError
from gateway.cli.eval import eval_app
from gateway.cli.output import console, err, friendly

if TYPE_CHECKING:  # pandas loads only when an eval command runs, not with every llmgw command
    import pandas as pd

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


class Format(StrEnum):
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
    for column, frame in (("prompt", comparison.by_prompt), ("category", comparison.by_category)):
        if frame.empty or frame[column].nunique() < 2:
            continue
        table = Table(title=f"By {column} (primary scorer {comparison.primary}; 95% CI)")
        for name in ("system", column, "n", "mean", "95% CI", "cost USD", "p50 ms"):
            table.add_column(name, justify="left" if name in ("system", column) else "right")
        for r in frame[frame["scorer"] == comparison.primary].to_dict("records"):
            table.add_row(
                r["system"], str(r[column]), str(r["n"]), _fmt(r["mean"]),
                f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]", _fmt(r["cost_usd"], 4),
                _fmt(r["latency_p50_ms"], 0),
            )  # fmt: skip
        console.print(table)
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
        ratings = Table(title="Bradley-Terry ratings from the pairwise judge (one scale per run)")
        for column in ("judge", "run", "system", "rating", "95% CI", "games"):
            ratings.add_column(column)
        for r in comparison.ratings.to_dict("records"):
            ratings.add_row(
                r["scorer"], r["run_id"], r["model"], _fmt(r["rating"], 0),
                f"[{_fmt(r['ci_low'], 0)}, {_fmt(r['ci_high'], 0)}]", str(r["games"]),
            )  # fmt: skip
        console.print(ratings)
    if regressed is not None and regressed.empty:
        console.print("[green]no significant regression against the baseline[/green]")


@eval_app.command("compare")
@friendly
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
@friendly
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


def _published_name(comparison: Any, system: str) -> str | None:
    """The registry model a system's figures belong to: the one model the gateway served
    for it (`served_model`), or None when its calls went to several (an `auto` route)."""
    rows = comparison.rows[comparison.rows["system"] == system]
    served = rows["served_model"].dropna().unique() if "served_model" in rows else []
    if len(served) == 1:
        return str(served[0])
    if len(served) == 0:
        return str(rows["model"].iloc[0])
    return None


def _use_case_of(comparison: Any) -> str | None:
    """The use case a run measured, when its dataset is one of the built-in use cases."""
    sweep = comparison.runs[0].manifest.get("sweep") or {}
    dataset = sweep.get("dataset") if isinstance(sweep, dict) else None
    path = dataset.get("path") if isinstance(dataset, dict) else None
    known = ("chat", "summarization", "classification", "extraction", "research")
    return path if path in known else None


@eval_app.command("publish")
@friendly
def publish_command(
    run: Annotated[str, typer.Argument(help="The run: an id (under --runs-dir) or its folder.")],
    use_case: Annotated[
        str | None,
        typer.Option(help="The use case measured (default: the run's built-in dataset)."),
    ] = None,
    scorer: ScorerOption = None,
    runs_dir: RunsDirOption = "eval-runs",
    url: Annotated[
        str | None, typer.Option(help="Gateway URL (default: the one `up` started).")
    ] = None,
    seed: SeedOption = 0,
) -> None:
    """Write each model's quality on the use case (mean, 95% interval, cases, run) into the
    registry, where the `quality` strategy reads it: `llmgw models show MODEL` shows it."""
    from datetime import datetime
    from urllib.parse import quote

    from gateway.cli.client import AdminClient

    comparison = _compare([run], None, scorer, runs_dir, seed)
    use_case = use_case or _use_case_of(comparison)
    if use_case is None:
        raise CLIError("which use case did this run measure? pass --use-case (chat, ...)")
    client = AdminClient.from_state(url)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    figures = comparison.models[comparison.models["scorer"] == comparison.primary]
    for r in figures.to_dict("records"):
        name = _published_name(comparison, r["system"])
        if name is None:
            err.print(f"skipped {r['system']}: its calls were served by several models")
            continue
        figure = {
            "mean": r["mean"],
            "ci_low": r["ci_low"],
            "ci_high": r["ci_high"],
            "n": int(r["n"]),
            "scorer": comparison.primary,
            "run_id": r["run_id"],
            "published_at": now,
        }
        data = client.request(
            "PATCH",
            f"/admin/models/{quote(name, safe='')}",
            {"published_quality": {use_case: figure}},
        )
        console.print(
            f"{name}: {use_case} {comparison.primary} {r['mean']:.3f} "
            f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] n={int(r['n'])} "
            f"-> registry version {data.get('version')}"
        )
