"""The `llmgw` command line."""

from __future__ import annotations

import typer

from gateway.cli import (
    eval,
    eval_compare,  # noqa: F401  (adds compare and report to eval_app)
    lifecycle,
    models,
    tenants,
    usage,
)

app = typer.Typer(
    name="llmgw",
    help="llmgw: an enterprise LLM gateway on Ray Serve.",
    no_args_is_help=True,
    add_completion=False,
)
lifecycle.register(app)
app.add_typer(models.models_app, name="models")
app.add_typer(models.route_app, name="route")
app.add_typer(tenants.tenants_app, name="tenants")
app.add_typer(tenants.keys_app, name="keys")
app.add_typer(eval.eval_app, name="eval")
app.command("usage")(usage.usage)


def main() -> None:
    app()
