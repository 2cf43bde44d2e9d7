"""`llmgw models ...` and `llmgw route explain`: the registry and the router, for people."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
import yaml
from rich.table import Table

from gateway.cli.client import AdminClient, CLIError
from gateway.cli.output import console, err, friendly

models_app = typer.Typer(help="List, inspect and change the models the gateway serves.")
route_app = typer.Typer(help="See how the gateway routes a request.")

UrlOption = Annotated[str | None, typer.Option(help="Gateway URL (default: the one `up` started).")]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


@models_app.command("list")
@friendly
def list_models(url: UrlOption = None) -> None:
    """Every registered model with its provider, status, prices and live latency."""
    data = AdminClient.from_state(url).request("GET", "/admin/models")
    table = Table(title=f"Models (registry version {data['version']})")
    for column in (
        "name",
        "provider",
        "upstream",
        "status",
        "use cases",
        "context",
        "$/Mtok in",
        "$/Mtok out",
        "p50 ms",
        "errors",
    ):
        table.add_column(column)
    for m in sorted(data["data"], key=lambda m: m["name"]):
        stats = m["stats"]
        table.add_row(
            m["name"],
            m["provider"],
            m.get("upstream") or m["name"],
            m["status"],
            ",".join(m["use_cases"]),
            str(m["context_window"]),
            f"{m['price']['input_per_mtok']:g}",
            f"{m['price']['output_per_mtok']:g}",
            _ms(stats["latency_p50_ms"]),
            f"{stats['error_rate']:.1%}",
        )
    console.print(table)


@models_app.command("show")
@friendly
def show(name: str, url: UrlOption = None) -> None:
    """One model's full registry entry and live statistics."""
    data = AdminClient.from_state(url).request("GET", f"/admin/models/{name}")
    console.print(yaml.safe_dump(data, sort_keys=False).rstrip())


def _coerce(raw: str) -> Any:
    """A CLI value as YAML reads it: numbers, booleans, lists (`[a, b]`) and strings."""
    return yaml.safe_load(raw) if raw else raw


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """`price.input_per_mtok=0.2 status=testing` -> `{"price": {...}, "status": "testing"}`."""
    changes: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CLIError(f"expected FIELD=VALUE, got '{item}'")
        target = changes
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = _coerce(raw)
    return changes


@models_app.command("add")
@friendly
def add(
    file: Annotated[
        Path | None, typer.Option(help="YAML or JSON file with the model entry.")
    ] = None,
    fields: Annotated[list[str] | None, typer.Argument(help="FIELD=VALUE pairs.")] = None,
    url: UrlOption = None,
) -> None:
    """Register a model, from a file and/or FIELD=VALUE pairs (name=... provider=... ...)."""
    entry: dict[str, Any] = {}
    if file is not None:
        entry = yaml.safe_load(file.read_text()) or {}
    entry.update(parse_assignments(fields or []))
    data = AdminClient.from_state(url).request("POST", "/admin/models", entry)
    console.print(f"registered {data['model']} (registry version {data['version']})")


@models_app.command("set")
@friendly
def set_fields(
    name: str,
    fields: Annotated[
        list[str], typer.Argument(help="FIELD=VALUE pairs, e.g. price.input_per_mtok=0.2")
    ],
    url: UrlOption = None,
) -> None:
    """Change a model's fields: price, status, capabilities, context window, ..."""
    data = AdminClient.from_state(url).request(
        "PATCH", f"/admin/models/{name}", parse_assignments(fields)
    )
    console.print(f"updated {data['model']} (registry version {data['version']})")


@models_app.command("diff")
def diff(
    config: Annotated[Path, typer.Option("--config", help="The config file to compare with.")],
    url: UrlOption = None,
) -> None:
    """What a start with --config would add, change, remove and deprecate in the registry.
    Exits 0 when nothing, 2 when something would change (for deploy pipelines)."""
    try:
        data = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError) as exc:
        err.print(f"[red]error:[/red] {config}: cannot read the config file ({exc})")
        raise typer.Exit(1) from None
    try:
        plan = AdminClient.from_state(url).request(
            "POST", f"/admin/registry/diff?path={quote(str(config.resolve()))}", data
        )
    except CLIError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    labels = {"add": "+", "change": "~", "remove": "-", "deprecate": "!"}
    changes = 0
    for kind, sign in labels.items():
        for name in plan.get(kind, []):
            console.print(f"{sign} {kind:<9} {name}")
            changes += 1
    for name in plan.get("admin_overrides_kept", []):
        console.print(f"= keep      {name} (changed by an admin; the file leaves it as it was)")
    if not changes:
        console.print(f"no changes: the registry matches {config}")
        raise typer.Exit(0)
    raise typer.Exit(2)


@models_app.command("deprecate")
@friendly
def deprecate(name: str, url: UrlOption = None) -> None:
    """Mark a model deprecated: still served by name, never picked by `auto`."""
    data = AdminClient.from_state(url).request("POST", f"/admin/models/{name}/deprecate")
    console.print(f"deprecated {data['model']} (registry version {data['version']})")


@models_app.command("remove")
@friendly
def remove(name: str, url: UrlOption = None) -> None:
    """Remove a model from the registry."""
    data = AdminClient.from_state(url).request("DELETE", f"/admin/models/{name}")
    console.print(f"removed {data['model']} (registry version {data['version']})")


@route_app.command("explain")
@friendly
def explain(
    prompt: Annotated[str, typer.Argument(help="The user message.")] = "Hello",
    model: Annotated[str, typer.Option(help="A model name, alias, or auto.")] = "auto",
    use_case: Annotated[str | None, typer.Option(help="chat, summarization, ...")] = None,
    strategy: Annotated[str | None, typer.Option(help="capability, cost, latency, ...")] = None,
    min_quality: Annotated[
        float | None,
        typer.Option(help="Route to the cheapest model whose published quality clears this."),
    ] = None,
    stream: Annotated[bool, typer.Option(help="Route as a streaming request.")] = False,
    max_tokens: Annotated[int | None, typer.Option(help="The request's max_tokens.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    url: UrlOption = None,
) -> None:
    """The ranked candidates the gateway would try for a request, and why."""
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if use_case:
        body["use_case"] = use_case
    if strategy:
        body["route"] = {"strategy": strategy}
    if min_quality is not None:
        body.setdefault("route", {})["min_quality"] = min_quality
    if stream:
        body["stream"] = True
    if max_tokens:
        body["max_tokens"] = max_tokens
    data = AdminClient.from_state(url).request("POST", "/admin/route/explain", body)
    if as_json:
        console.print_json(json.dumps(data))
        return
    table = Table(title=f"Route for model={model} (strategy {data['strategy']})")
    for column in ("rank", "model", "provider", "score", "why"):
        table.add_column(column)
    for c in data["candidates"]:
        table.add_row(str(c["rank"]), c["model"], c["provider"], f"{c['score']:.3f}", c["reason"])
    console.print(table)
    if data["rejected"]:
        rejected = Table(title="Not considered")
        rejected.add_column("model")
        rejected.add_column("why")
        for r in data["rejected"]:
            rejected.add_row(r["model"], r["reason"])
        console.print(rejected)
