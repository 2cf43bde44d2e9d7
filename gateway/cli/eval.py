"""`llmgw eval ...`: evaluation sweeps over the gateway's models, as Ray Data jobs.

`eval_app` is shared: `run` lives here; the comparison and report commands attach to the same
app from `gateway/cli/eval_compare.py`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from gateway.cli.client import CLIError, read_state
from gateway.cli.output import console, friendly

eval_app = typer.Typer(help="Run evaluation sweeps over the gateway's models.")

GatewayOption = Annotated[
    str | None,
    typer.Option("--gateway", help="The gateway's URL (default: LLMGW_URL, then `llmgw up`'s)."),
]
KeyOption = Annotated[
    str | None,
    typer.Option("--key", help="The API key the sweep is charged to (default: LLMGW_API_KEY)."),
]


def _gateway_url(url: str | None) -> str:
    url = url or os.environ.get("LLMGW_URL") or read_state().get("url")
    if not url:
        raise CLIError("no gateway: pass --gateway URL, set LLMGW_URL, or start one with llmgw up")
    return url.rstrip("/")


def _api_key(key: str | None) -> str:
    key = key or os.environ.get("LLMGW_API_KEY") or os.environ.get("LLMGW_ADMIN_KEY")
    if not key:
        raise CLIError("no API key: pass --key KEY or set LLMGW_API_KEY")
    return key


@eval_app.command("run")
@friendly
def run(
    sweep: Annotated[Path, typer.Argument(help="The sweep file (YAML).")],
    gateway: GatewayOption = None,
    key: KeyOption = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Resume this run (default: a new id).")
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Run again the rows that failed.")
    ] = False,
    precision: Annotated[
        float | None,
        typer.Option(
            "--precision",
            help="Stop a model's rows once its 95% interval half-width is this narrow.",
        ),
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", help="Override the sweep's output folder or URI.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Run SWEEP on the local Ray (or the cluster RAY_ADDRESS names): rows to Parquet."""
    from evals.runner import RunOptions, run_sweep
    from evals.sweep import SweepError, load_sweep

    try:
        spec = load_sweep(sweep)
    except SweepError as error:
        raise CLIError(str(error)) from None
    options = RunOptions(
        gateway=_gateway_url(gateway),
        key=_api_key(key),
        run_id=run_id,
        retry_failed=retry_failed,
        precision=precision,
        output=output,
        progress=progress,
    )
    try:
        manifest = run_sweep(spec, options, announce=lambda rid: console.print(f"run id: {rid}"))
    except SweepError as error:
        raise CLIError(str(error) if error.source else f"{sweep}: {error}") from None
    totals = manifest["totals"]
    console.print(
        f"{totals['rows']} rows, {totals['errors']} errors, ${totals['cost_usd']:.6f}"
        f" -> {manifest['location']}"
    )
