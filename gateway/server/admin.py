"""The admin API under `/admin`: registry changes, route explanations and status.

Every route passes the pipeline as an `admin` endpoint (authenticated, `admin` scope, audited);
changes go to the registry actor, whose next pushed snapshot carries them to every replica.
Each change records who made it, so the registry can tell an admin's entry (or an admin's
change to a config entry) from the config file's.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from gateway.config import ConfigError, ModelConfig, parse_config
from gateway.errors import InvalidRequestError, ModelNotFoundError
from gateway.pipeline.context import RequestContext
from gateway.pipeline.steps.admission import Validate
from gateway.pipeline.steps.serving import Enrich
from gateway.providers.facts import load_model_facts
from gateway.registry.snapshot import RegistrySnapshot
from gateway.routing import plan
from gateway.server.admin_common import AdminRoutes, json_response
from gateway.server.body import read_body


def model_view(model: ModelConfig, snapshot: RegistrySnapshot) -> dict[str, Any]:
    """A model as the admin API shows it: its entry, where it came from, live statistics."""
    stats = snapshot.stats_for(model.name)
    view = model.model_dump(mode="json", exclude_none=True)
    view["origin"] = snapshot.origins.get(model.name) or {"kind": "unknown"}
    # Where capabilities, limits and price came from: config, admin, table:<source>, default.
    view["facts"] = view.pop("facts", None) or {}
    view["stats"] = {
        "requests": stats.requests,
        "error_rate": round(stats.error_rate, 4),
        "latency_p50_ms": stats.latency_p50_ms,
        "latency_p99_ms": stats.latency_p99_ms,
        "ttft_p50_ms": stats.ttft_p50_ms,
        "ttft_p99_ms": stats.ttft_p99_ms,
    }
    return view


def decision_view(decision: Any) -> dict[str, Any]:
    return {
        "strategy": decision.strategy,
        "candidates": [
            {
                "rank": i + 1,
                "model": c.model.name,
                "provider": c.model.provider,
                "score": round(c.score, 4),
                "reason": c.reason,
            }
            for i, c in enumerate(decision.candidates)
        ],
        "rejected": [{"model": name, "reason": why} for name, why in decision.rejected],
    }


def _who(ctx: RequestContext) -> str:
    return ctx.principal.key_id if ctx.principal is not None else "unknown"


def add_admin_routes(api: FastAPI, routes: AdminRoutes) -> None:
    """Mount the registry, routing and status routes of `/admin` on `api`. Each route reads
    its body only once the caller has passed the gate as an admin."""
    runtime = routes.runtime
    services = runtime.services
    admin = runtime.admin

    @api.get("/admin/models")
    async def admin_models(request: Request) -> Response:
        async def action(ctx: RequestContext) -> Response:
            snapshot = services.snapshot()
            data = [model_view(m, snapshot) for m in snapshot.models.values()]
            return json_response({"version": snapshot.version, "data": data})

        return await routes.run(request, action)

    @api.get("/admin/models/{name:path}")
    async def admin_model(name: str, request: Request) -> Response:
        async def action(ctx: RequestContext) -> Response:
            snapshot = services.snapshot()
            model = snapshot.resolve(name)
            if model is None:
                raise ModelNotFoundError(f"no model named '{name}'", param="name")
            return json_response(model_view(model, snapshot))

        return await routes.run(request, action)

    @api.post("/admin/models")
    async def register(request: Request) -> Response:
        async def action(ctx: RequestContext) -> Response:
            model = ModelConfig.model_validate(await routes.body(request))
            entry = model.model_dump(mode="json")
            version = await admin.register_model(entry, _who(ctx))
            ctx.audit_detail = {"action": "model.register", "before": None, "after": entry}
            return json_response({"version": version, "model": model.name}, status=201)

        return await routes.run(request, action)

    async def change(request: Request, name: str, what: str, changes: Any) -> Response:
        async def action(ctx: RequestContext) -> Response:
            before = services.snapshot().models.get(name)
            body = changes if changes is not None else await routes.body(request)
            version = await admin.update_model(name, body, _who(ctx))
            after = services.snapshot().models.get(name)
            ctx.audit_detail = {
                "action": what,
                "before": before.model_dump(mode="json") if before else None,
                "after": after.model_dump(mode="json") if after else None,
            }
            return json_response({"version": version, "model": name, **(changes or {})})

        return await routes.run(request, action)

    @api.patch("/admin/models/{name:path}")
    async def update(name: str, request: Request) -> Response:
        return await change(request, name, "model.update", None)

    @api.post("/admin/models/{name:path}/deprecate")
    async def deprecate(name: str, request: Request) -> Response:
        return await change(request, name, "model.deprecate", {"status": "deprecated"})

    @api.delete("/admin/models/{name:path}")
    async def remove(name: str, request: Request) -> Response:
        async def action(ctx: RequestContext) -> Response:
            before = services.snapshot().models.get(name)
            version = await admin.remove_model(name)
            ctx.audit_detail = {
                "action": "model.remove",
                "before": before.model_dump(mode="json") if before else None,
                "after": None,
            }
            return json_response({"version": version, "model": name, "removed": True})

        return await routes.run(request, action)

    @api.post("/admin/registry/diff")
    async def diff(request: Request) -> Response:
        """What a start with the posted config would add, change, remove and deprecate."""

        async def action(ctx: RequestContext) -> Response:
            try:
                config = parse_config(await routes.body(request), "the posted config")
            except ConfigError as exc:
                raise InvalidRequestError(str(exc), param="config") from None
            config = load_model_facts().apply(config).from_file(request.query_params.get("path"))
            return json_response(await admin.plan_config(config))

        return await routes.run(request, action)

    @api.post("/admin/route/explain")
    async def explain(request: Request) -> Response:
        """The ranked candidates the gateway would try for a chat request, and why."""

        async def action(ctx: RequestContext) -> Response:
            call = RequestContext(
                endpoint="chat", path="/v1/chat/completions", headers=request.headers
            )
            call.body = await read_body(request, routes.max_body)
            call.principal = ctx.principal
            # The same parsing and enrichment a call gets, whatever the configured steps.
            await Validate(services).handle(call)
            await Enrich(services).handle(call)
            assert call.route_request is not None and call.snapshot is not None
            decision = plan(
                call.route_request,
                call.snapshot,
                services.config.routing,
                services.invoker.circuits,
                explain=True,
            )
            return json_response(decision_view(decision))

        return await routes.run(request, action)

    @api.get("/admin/status")
    async def status(request: Request) -> Response:
        async def action(ctx: RequestContext) -> Response:
            snapshot = services.snapshot()
            data = await admin.status()
            origins = Counter(
                (snapshot.origins.get(name) or {}).get("kind", "unknown")
                for name in snapshot.models
            )
            data["registry"] = {
                "version": snapshot.version,
                "models": len(snapshot.models),
                "providers": sorted(snapshot.providers),
                "config": snapshot.config_source,
                "origins": dict(sorted(origins.items())),
            }
            return json_response(data)

        return await routes.run(request, action)
