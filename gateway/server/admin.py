"""The admin API under `/admin`: registry changes, route explanations and status.

Every route passes the pipeline as an `admin` endpoint (authenticated, `admin` scope, audited);
changes go to the registry actor, whose next pushed snapshot carries them to every replica.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import ValidationError

from gateway.config import ModelConfig
from gateway.errors import GatewayError, InvalidRequestError, ModelNotFoundError
from gateway.pipeline.context import Endpoint, RequestContext
from gateway.pipeline.steps.admission import Validate, validation_error
from gateway.pipeline.steps.serving import Enrich
from gateway.routing import plan
from gateway.server.body import read_body
from gateway.server.runtime import GatewayRuntime

Gate = Callable[[Request, Endpoint], Awaitable[RequestContext]]
ErrorResponse = Callable[[GatewayError], Response]


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def model_view(model: ModelConfig, stats: Any) -> dict[str, Any]:
    view = model.model_dump(mode="json", exclude_none=True)
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


async def _body(request: Request, limit: int) -> dict[str, Any]:
    try:
        data = orjson.loads(await read_body(request, limit) or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"the body is not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("the body must be a JSON object")
    return data


def add_admin_routes(
    api: FastAPI, runtime: GatewayRuntime, gate: Gate, error_response: ErrorResponse
) -> None:
    """Mount `/admin/*` on `api`. Each route reads its body only once the caller has passed
    the gate as an admin."""
    services = runtime.services
    max_body = services.config.server.max_body_bytes

    async def admin(request: Request, action: Callable[[], Awaitable[Response]]) -> Response:
        ctx = await gate(request, "admin")
        if ctx.error is None:
            try:
                response = await action()
            except ValidationError as exc:
                ctx.error = validation_error(exc)
            except GatewayError as error:
                ctx.error = error
            else:
                ctx.status = response.status_code
        if ctx.error is not None:
            ctx.status = ctx.error.status_code
        await runtime.pipeline.finish(ctx)
        if ctx.error is not None:
            return error_response(ctx.error)
        return response

    @api.get("/admin/models")
    async def admin_models(request: Request) -> Response:
        async def action() -> Response:
            snapshot = services.snapshot()
            data = [model_view(m, snapshot.stats_for(m.name)) for m in snapshot.models.values()]
            return _json({"version": snapshot.version, "data": data})

        return await admin(request, action)

    @api.get("/admin/models/{name:path}")
    async def admin_model(name: str, request: Request) -> Response:
        async def action() -> Response:
            snapshot = services.snapshot()
            model = snapshot.resolve(name)
            if model is None:
                raise ModelNotFoundError(f"no model named '{name}'", param="name")
            return _json(model_view(model, snapshot.stats_for(model.name)))

        return await admin(request, action)

    @api.post("/admin/models")
    async def register(request: Request) -> Response:
        async def action() -> Response:
            model = ModelConfig.model_validate(await _body(request, max_body))
            version = await runtime.admin.register_model(model.model_dump(mode="json"))
            return _json({"version": version, "model": model.name}, status=201)

        return await admin(request, action)

    @api.patch("/admin/models/{name:path}")
    async def update(name: str, request: Request) -> Response:
        async def action() -> Response:
            version = await runtime.admin.update_model(name, await _body(request, max_body))
            return _json({"version": version, "model": name})

        return await admin(request, action)

    @api.post("/admin/models/{name:path}/deprecate")
    async def deprecate(name: str, request: Request) -> Response:
        async def action() -> Response:
            version = await runtime.admin.deprecate_model(name)
            return _json({"version": version, "model": name, "status": "deprecated"})

        return await admin(request, action)

    @api.delete("/admin/models/{name:path}")
    async def remove(name: str, request: Request) -> Response:
        async def action() -> Response:
            version = await runtime.admin.remove_model(name)
            return _json({"version": version, "model": name, "removed": True})

        return await admin(request, action)

    @api.post("/admin/route/explain")
    async def explain(request: Request) -> Response:
        """The ranked candidates the gateway would try for a chat request, and why."""

        async def action() -> Response:
            ctx = RequestContext(
                endpoint="chat", path="/v1/chat/completions", headers=request.headers
            )
            ctx.body = await read_body(request, max_body)
            # The same parsing and enrichment a call gets, whatever the configured steps.
            await Validate(services).handle(ctx)
            await Enrich(services).handle(ctx)
            assert ctx.route_request is not None and ctx.snapshot is not None
            decision = plan(
                ctx.route_request,
                ctx.snapshot,
                services.config.routing,
                services.invoker.circuits,
                explain=True,
            )
            return _json(decision_view(decision))

        return await admin(request, action)

    @api.get("/admin/status")
    async def status(request: Request) -> Response:
        async def action() -> Response:
            snapshot = services.snapshot()
            data = await runtime.admin.status()
            data["registry"] = {
                "version": snapshot.version,
                "models": len(snapshot.models),
                "providers": sorted(snapshot.providers),
            }
            return _json(data)

        return await admin(request, action)
