"""The `llmgw` commands that need only a gateway's URL and admin key (no Ray).

`up` and `down` run the gateway on Ray, so `deployments/cli.py` adds them and is the console
script's entry point; this package stays importable without Ray.
"""

from __future__ import annotations

import typer

from gateway.cli import (
    eval,
    eval_compare,  # noqa: F401  (adds compare and report to eval_app)
    models,
    tenants,
    usage,
)
from gateway.cli.status import status

app = typer.Typer(
    name="llmgw",
    help="llmgw: an enterprise LLM gateway on Ray Serve.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("status")(status)
app.add_typer(models.models_app, name="models")
app.add_typer(models.route_app, name="route")
app.add_typer(tenants.tenants_app, name="tenants")
app.add_typer(tenants.keys_app, name="keys")
app.add_typer(eval.eval_app, name="eval")
app.command("usage")(usage.usage)
