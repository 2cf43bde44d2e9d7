"""`llmgw status`: what the running gateway reports about itself, over its admin API.

It needs no Ray: the ingress answers from Serve's status and the registry snapshot, so an
operator's laptop can ask a remote gateway with only its URL and the admin key.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from gateway.cli.client import AdminClient
from gateway.cli.output import console, friendly, print_metrics


@friendly
def status(
    url: Annotated[
        str | None, typer.Option(help="Gateway URL (default: the one `up` started).")
    ] = None,
) -> None:
    """Deployments, replicas, registry and models of the running gateway."""
    data = AdminClient.from_state(url).request("GET", "/admin/status")
    deployments = Table(title="Deployments")
    for column in ("application", "deployment", "status", "replicas"):
        deployments.add_column(column)
    for app_name, app in data.get("applications", {}).items():
        for name, info in app["deployments"].items():
            replicas = ", ".join(f"{k}: {v}" for k, v in info["replicas"].items())
            deployments.add_row(app_name, name, info["status"], replicas)
    console.print(deployments)
    registry = data["registry"]
    console.print(
        f"Registry version {registry['version']}: {registry['models']} models, "
        f"providers: {', '.join(registry['providers'])}"
    )
    source = registry.get("config") or {}
    origins = ", ".join(f"{n} from {kind}" for kind, n in (registry.get("origins") or {}).items())
    console.print(
        f"Reconciled with config {source.get('path') or '(built in)'} "
        f"(hash {(source.get('hash') or '-')[:12]}); models: {origins or 'none'}"
    )
    print_metrics(data.get("metrics") or [])
    _print_health(data.get("health") or {})
    providers = data.get("providers")
    if providers:
        table = Table(title="Providers")
        for column in ("provider", "on", "why"):
            table.add_column(column)
        for row in providers:
            table.add_row(row["provider"], "yes" if row["on"] else "no", row["why"])
        console.print(table)


def _print_health(health: dict[str, dict[str, object]]) -> None:
    if not health:
        return
    table = Table(title="Provider health")
    for column in ("provider", "state", "last probe", "latency ms", "error"):
        table.add_column(column)
    now = time.time()
    for name, h in sorted(health.items()):
        ago = f"{now - float(h['checked_at']):.0f} s ago"  # type: ignore[arg-type]
        latency = f"{float(h['latency_ms']):.1f}"  # type: ignore[arg-type]
        table.add_row(name, str(h["state"]), ago, latency, str(h.get("error") or ""))
    console.print(table)
