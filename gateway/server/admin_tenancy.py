"""`/admin/tenants` and `/admin/keys`: who may call the gateway, and with what limits.

Changes go to the tenancy backend (the access actor under Serve) and return once this replica
holds them; other replicas have them within the access watch's round trip.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from gateway.pipeline.context import RequestContext
from gateway.server.admin_common import AdminRoutes, json_response


def _changed(ctx: RequestContext, action: str, before: Any, after: Any) -> None:
    ctx.audit_detail = {"action": action, "before": before, "after": after}


def add_tenancy_routes(api: FastAPI, routes: AdminRoutes) -> None:
    """Mount the tenant and key routes on `api`."""
    tenancy = routes.runtime.tenancy

    @api.get("/admin/tenants")
    async def list_tenants(request: Request) -> Response:
        async def action(ctx: RequestContext) -> Response:
            return json_response({"data": await tenancy.tenants()})

        return await routes.run(request, action)

    @api.post("/admin/tenants")
    async def create_tenant(request: Request) -> Response:
        async def action(ctx: RequestContext) -> Response:
            tenant, version = await tenancy.create_tenant(await routes.body(request))
            _changed(ctx, "tenant.create", None, tenant)
            return json_response({"tenant": tenant, "version": version}, status=201)

        return await routes.run(request, action)

    @api.get("/admin/tenants/{name}")
    async def show_tenant(name: str, request: Request) -> Response:
        async def action(ctx: RequestContext) -> Response:
            tenant = await tenancy.tenant(name)
            return json_response(tenant | {"keys": await tenancy.keys(name)})

        return await routes.run(request, action)

    async def change_tenant(
        request: Request, name: str, what: str, changes: dict[str, Any] | None = None
    ) -> Response:
        async def action(ctx: RequestContext) -> Response:
            body = changes if changes is not None else await routes.body(request)
            before, after, version = await tenancy.update_tenant(name, body)
            _changed(ctx, what, before, after)
            return json_response({"tenant": after, "version": version})

        return await routes.run(request, action)

    @api.patch("/admin/tenants/{name}")
    async def update_tenant(name: str, request: Request) -> Response:
        return await change_tenant(request, name, "tenant.update")

    @api.post("/admin/tenants/{name}/suspend")
    async def suspend_tenant(name: str, request: Request) -> Response:
        return await change_tenant(request, name, "tenant.suspend", {"status": "suspended"})

    @api.post("/admin/tenants/{name}/resume")
    async def resume_tenant(name: str, request: Request) -> Response:
        return await change_tenant(request, name, "tenant.resume", {"status": "active"})

    @api.get("/admin/keys")
    async def list_keys(request: Request, tenant: str | None = None) -> Response:
        async def action(ctx: RequestContext) -> Response:
            return json_response({"data": await tenancy.keys(tenant)})

        return await routes.run(request, action)

    @api.post("/admin/keys")
    async def create_key(request: Request) -> Response:
        async def action(ctx: RequestContext) -> Response:
            view, secret, version = await tenancy.create_key(await routes.body(request))
            _changed(ctx, "key.create", None, view)  # the view, never the key itself
            return json_response(view | {"key": secret, "version": version}, status=201)

        return await routes.run(request, action)

    @api.get("/admin/keys/{key_id}")
    async def show_key(key_id: str, request: Request) -> Response:
        async def action(ctx: RequestContext) -> Response:
            return json_response(await tenancy.key(key_id))

        return await routes.run(request, action)

    async def revoke(request: Request, key_id: str) -> Response:
        async def action(ctx: RequestContext) -> Response:
            before = await tenancy.key(key_id)
            view, version = await tenancy.revoke_key(key_id)
            _changed(ctx, "key.revoke", before, view)
            return json_response(view | {"version": version})

        return await routes.run(request, action)

    @api.post("/admin/keys/{key_id}/revoke")
    async def revoke_key(key_id: str, request: Request) -> Response:
        return await revoke(request, key_id)

    @api.delete("/admin/keys/{key_id}")
    async def delete_key(key_id: str, request: Request) -> Response:
        return await revoke(request, key_id)
