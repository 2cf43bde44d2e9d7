"""Where the CLI writes: one console for results, one for errors, one way to report a failure."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from gateway.cli.client import CLIError

# Tables stay readable when piped: rich would otherwise squeeze them into 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

Command = TypeVar("Command", bound=Callable[..., Any])


def friendly(command: Command) -> Command:
    """Report a `CLIError` as one red line and exit 1, instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CLIError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def print_metrics(endpoints: list[dict[str, str]]) -> None:
    """Where Prometheus scrapes the gateway's metrics, or why there is nowhere."""
    if endpoints:
        urls = ", ".join(e["url"] for e in endpoints)
        console.print(f"Metrics (Prometheus, one scrape per node): {urls}")
    else:
        console.print(
            "Metrics: this Ray cluster exports none (start it with --metrics-export-port)"
        )
