"""`llmgw tenants ...` and `llmgw keys ...`: who may call the gateway, with what limits."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from gateway.cli.client import AdminClient, CLIError
from gateway.cli.models import UrlOption, parse_assignments
from gateway.cli.output import console, friendly

tenants_app = typer.Typer(help="Create, inspect, limit and suspend tenants.")
keys_app = typer.Typer(help="Create, list and revoke tenants' API keys.")

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

RpmOption = Annotated[int | None, typer.Option("--rpm", help="Requests per minute.")]
TpmOption = Annotated[int | None, typer.Option("--tpm", help="Tokens per minute.")]
BudgetOption = Annotated[float | None, typer.Option("--budget-usd", help="Budget in USD.")]
PeriodOption = Annotated[str, typer.Option("--budget-period", help="day or month (UTC).")]
SoftOption = Annotated[
    bool, typer.Option("--soft", help="Serve past the budget and flag it, instead of refusing.")
]


def parse_duration(text: str) -> float:
    """`30d`, `12h`, `90m`, `45s`, `2w` -> seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise CLIError(f"expected a duration like 30d, 12h, 90m or 45s, got '{text}'")
    return float(match.group(1)) * _SECONDS[match.group(2)]


def _limits(
    rpm: int | None, tpm: int | None, budget: float | None, period: str, soft: bool
) -> dict[str, Any] | None:
    if period not in ("day", "month"):
        raise CLIError(f"--budget-period: expected day or month, got '{period}'")
    limits: dict[str, Any] = {}
    if rpm is not None:
        limits["rpm"] = rpm
    if tpm is not None:
        limits["tpm"] = tpm
    if budget is not None:
        limits["budgets"] = [{"usd": budget, "period": period, "hard": not soft}]
    return limits or None


def _money(budgets: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"${b['usd']:g}/{b['period']}{'' if b['hard'] else ' (soft)'}" for b in budgets
    )


@tenants_app.command("create")
@friendly
def create_tenant(
    name: str,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    budget_usd: BudgetOption = None,
    budget_period: PeriodOption = "month",
    soft: SoftOption = False,
    url: UrlOption = None,
) -> None:
    """Create a tenant, optionally with rate limits and a budget."""
    body: dict[str, Any] = {"name": name}
    if limits := _limits(rpm, tpm, budget_usd, budget_period, soft):
        body["limits"] = limits
    data = AdminClient.from_state(url).request("POST", "/admin/tenants", body)
    console.print(f"created tenant {data['tenant']['name']}")


@tenants_app.command("list")
@friendly
def list_tenants(url: UrlOption = None) -> None:
    """Every tenant with its status and limits."""
    data = AdminClient.from_state(url).request("GET", "/admin/tenants")
    table = Table(title="Tenants")
    for column in ("name", "status", "rpm", "tpm", "budgets", "models", "providers"):
        table.add_column(column)
    for t in data["data"]:
        limits = t["limits"]
        table.add_row(
            t["name"],
            t["status"],
            str(limits["rpm"] or "-"),
            str(limits["tpm"] or "-"),
            _money(limits["budgets"]) or "-",
            ",".join(t["allowed_models"]) if t["allowed_models"] is not None else "all",
            ",".join(t["allowed_providers"]) if t["allowed_providers"] is not None else "all",
        )
    console.print(table)


@tenants_app.command("show")
@friendly
def show_tenant(name: str, url: UrlOption = None) -> None:
    """A tenant's full settings and its keys."""
    data = AdminClient.from_state(url).request("GET", f"/admin/tenants/{name}")
    console.print(yaml.safe_dump(data, sort_keys=False).rstrip())


@tenants_app.command("set")
@friendly
def set_tenant(
    name: str,
    fields: Annotated[
        list[str],
        typer.Argument(help="FIELD=VALUE pairs, e.g. limits.rpm=100 allowed_models=[a,b]"),
    ],
    url: UrlOption = None,
) -> None:
    """Change a tenant's settings: limits, allowed models, providers, use cases, strategy..."""
    data = AdminClient.from_state(url).request(
        "PATCH", f"/admin/tenants/{name}", parse_assignments(fields)
    )
    console.print(f"updated tenant {data['tenant']['name']}")


@tenants_app.command("suspend")
@friendly
def suspend(name: str, url: UrlOption = None) -> None:
    """Refuse every key of the tenant (within a second, on every replica)."""
    AdminClient.from_state(url).request("POST", f"/admin/tenants/{name}/suspend")
    console.print(f"suspended tenant {name}")


@tenants_app.command("resume")
@friendly
def resume(name: str, url: UrlOption = None) -> None:
    """Serve a suspended tenant's keys again."""
    AdminClient.from_state(url).request("POST", f"/admin/tenants/{name}/resume")
    console.print(f"resumed tenant {name}")


@keys_app.command("create")
@friendly
def create_key(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the key belongs to.")],
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="inference, usage:read or admin; repeat for several."),
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime, e.g. 30d, 12h.")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="A label for listings.")] = "",
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    budget_usd: BudgetOption = None,
    budget_period: PeriodOption = "month",
    soft: SoftOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    url: UrlOption = None,
) -> None:
    """Create a key; it is printed once and never again (only its hash is kept)."""
    body: dict[str, Any] = {"tenant": tenant, "name": name, "scopes": scope or ["inference"]}
    if expires is not None:
        body["expires_in_s"] = parse_duration(expires)
    if limits := _limits(rpm, tpm, budget_usd, budget_period, soft):
        body["limits"] = limits
    data = AdminClient.from_state(url).request("POST", "/admin/keys", body)
    if as_json:
        print(json.dumps(data))
        return
    console.print(f"id:      {data['id']}")
    console.print(f"tenant:  {data['tenant']}  scopes: {', '.join(data['scopes'])}")
    if data["expires_at"]:
        console.print(f"expires: {data['expires_at']}")
    console.print("key (shown only now, store it safely):")
    print(data["key"])


@keys_app.command("list")
@friendly
def list_keys(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's.")] = None,
    url: UrlOption = None,
) -> None:
    """Keys with their prefix, scopes, status and last use (never the key itself)."""
    path = "/admin/keys" + (f"?tenant={tenant}" if tenant else "")
    data = AdminClient.from_state(url).request("GET", path)
    table = Table(title="API keys")
    for column in ("id", "prefix", "tenant", "scopes", "status", "expires", "last used"):
        table.add_column(column)
    for k in data["data"]:
        table.add_row(
            k["id"],
            k["prefix"] + "...",
            k["tenant"],
            ",".join(k["scopes"]),
            k["status"],
            (k["expires_at"] or "-")[:19],
            (k["last_used_at"] or "never")[:19],
        )
    console.print(table)


@keys_app.command("revoke")
@friendly
def revoke(key_id: str, url: UrlOption = None) -> None:
    """Revoke a key: refused on every replica within a second."""
    data = AdminClient.from_state(url).request("POST", f"/admin/keys/{key_id}/revoke")
    console.print(f"revoked {data['id']} ({data['prefix']}...)")
