"""`llmgw usage`: who spent what, from the running gateway's `GET /admin/usage`."""

from __future__ import annotations

import csv
import json
import sys
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlencode

import typer
from rich.table import Table

from gateway.cli.client import AdminClient
from gateway.cli.output import console, friendly

# Shown in this order, after the group's own columns.
_TOTALS = ("requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd")


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@friendly
def usage(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    key: Annotated[str | None, typer.Option(help="Only this key id (key_...).")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    since: Annotated[
        str | None, typer.Option(help="From this UTC date or time (2026-12-01, 2026-12-01T09:00).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Up to (not including) this time.")] = None,
    by: Annotated[
        list[str] | None,
        typer.Option(help="Group by tenant|key|model|provider|day; repeat or comma-separate."),
    ] = None,
    output: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = Format.table,
    url: Annotated[
        str | None, typer.Option(help="Gateway URL (default: the one `up` started).")
    ] = None,
) -> None:
    """Requests, tokens and cost in USD, grouped by tenant and model unless --by says otherwise."""
    params: list[tuple[str, str]] = [
        (name, value)
        for name, value in (
            ("tenant", tenant),
            ("key", key),
            ("model", model),
            ("since", since),
            ("until", until),
        )
        if value
    ]
    params += [("by", b) for b in by or ()]
    path = "/admin/usage" + (f"?{urlencode(params)}" if params else "")
    rows: list[dict[str, Any]] = AdminClient.from_state(url).request("GET", path)["data"]
    if output is Format.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    columns = [c for c in (rows[0] if rows else {}) if c not in (*_TOTALS, "cached_tokens")]
    columns = [c for c in columns if c not in ("avg_latency_ms",)] + list(_TOTALS)
    if output is Format.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return
    table = Table(title="Usage")
    for column in columns:
        justify = "right" if column in _TOTALS else "left"
        table.add_column(column.replace("_", " "), justify=justify)
    for row in rows:
        table.add_row(*(_cell(column, row.get(column)) for column in columns))
    if rows:
        table.add_section()
        totals = {c: sum(r[c] for r in rows) for c in _TOTALS}
        table.add_row(
            *(_cell(c, totals.get(c, "total" if i == 0 else "")) for i, c in enumerate(columns))
        )
    console.print(table)


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if column == "cost_usd":
        return f"${value:,.6f}"
    if isinstance(value, int) and column in _TOTALS:
        return f"{value:,}"
    return str(value)
