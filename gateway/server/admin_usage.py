"""`GET /admin/usage` and `GET /admin/audit`: usage reports and the audit trail.

An `admin` key sees every tenant. A key with only `usage:read` sees its own tenant's usage and
nothing else (its tenant filter is forced; naming another tenant is a 403) and no audit trail.
Reads go to the store off the event loop, never through an actor.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from gateway.config import store_url
from gateway.errors import InvalidRequestError, PermissionDeniedError
from gateway.pipeline.context import RequestContext
from gateway.server.admin_common import AdminRoutes, ErrorResponse, Gate, json_response
from gateway.server.runtime import GatewayRuntime
from gateway.usage.reports import StoreUsageReader, UsageReader, parse_by, parse_time

MAX_AUDIT_LIMIT = 1000


def add_usage_routes(
    api: FastAPI,
    runtime: GatewayRuntime,
    gate: Gate,
    error_response: ErrorResponse,
    reader: UsageReader | None = None,
) -> None:
    """Mount the usage and audit routes on `api`; `reader` defaults to the configured store."""
    routes = AdminRoutes(runtime, gate, error_response)
    usage = reader or StoreUsageReader(store_url(runtime.services.config))

    @api.get("/admin/usage")
    async def usage_report(request: Request) -> Response:
        """Usage totals grouped by tenant|key|model|provider|day, filtered by tenant, key,
        model and a [since, until) time range."""

        async def action(ctx: RequestContext) -> Response:
            query = request.query_params
            fmt = query.get("format", "json")
            if fmt != "json":
                raise InvalidRequestError(f"format must be json, not '{fmt}'", param="format")
            tenant = _tenant_filter(ctx, query.get("tenant"))
            by = _parsed(parse_by, query.getlist("by") or None, param="by")
            filters: dict[str, Any] = {
                "by": by,
                "tenant": tenant,
                "key_id": query.get("key") or query.get("key_id"),
                "model": query.get("model"),
                "since": _parsed(parse_time, query.get("since"), "since", param="since"),
                "until": _parsed(parse_time, query.get("until"), "until", param="until"),
            }
            rows = await usage.report(**filters)
            shown = {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in filters.items()}
            return json_response({"object": "list", "filters": shown, "data": rows})

        return await routes.run(request, action)

    @api.get("/admin/audit")
    async def audit_trail(request: Request) -> Response:
        """The newest audit events, newest first (admin only)."""

        async def action(ctx: RequestContext) -> Response:
            if ctx.principal is None or not ctx.principal.may("admin"):
                raise PermissionDeniedError("the audit trail needs the 'admin' scope")
            query = request.query_params
            limit = query.get("limit", "100")
            if not limit.isdigit() or not 1 <= int(limit) <= MAX_AUDIT_LIMIT:
                raise InvalidRequestError(
                    f"limit must be a whole number from 1 to {MAX_AUDIT_LIMIT}, not '{limit}'",
                    param="limit",
                )
            events = await usage.audit(
                tenant=query.get("tenant") or None,
                since=_parsed(parse_time, query.get("since"), "since", param="since"),
                limit=int(limit),
            )
            data = [asdict(e) | {"at": e.at.isoformat()} for e in events]
            return json_response({"object": "list", "data": data})

        return await routes.run(request, action)


def _tenant_filter(ctx: RequestContext, asked: str | None) -> str | None:
    """The tenant a caller may see: any (or the one asked) for admins, else only its own."""
    principal = ctx.principal
    if principal is None:
        raise PermissionDeniedError("usage needs the 'usage:read' scope")
    if principal.may("admin"):
        return asked or None
    if asked and asked != principal.tenant:
        raise PermissionDeniedError(
            f"this key may read usage of tenant '{principal.tenant}' only, not '{asked}'",
            param="tenant",
        )
    return principal.tenant


def _parsed(parse: Any, *args: Any, param: str) -> Any:
    try:
        return parse(*args)
    except ValueError as exc:
        raise InvalidRequestError(str(exc), param=param) from None
