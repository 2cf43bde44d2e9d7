"""The tenancy backend Serve replicas use: changes go to the access actor, off the hot path."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from deployments.access_feed import AccessFeed
from deployments.admin_backend import call_actor
from gateway.tenancy.backend import View


class ActorTenancy:
    """`TenancyBackend` over the access actor. A change returns once this replica holds the
    new version, so the caller's next request sees it."""

    def __init__(self, feed: AccessFeed) -> None:
        self.feed = feed

    async def _changed(self, version: int) -> None:
        with contextlib.suppress(TimeoutError):
            await self.feed.wait_for_version(version, timeout_s=5.0)

    async def create_tenant(self, data: Mapping[str, Any]) -> tuple[View, int]:
        tenant, version = await call_actor(self.feed.actor.create_tenant, data)
        await self._changed(version)
        return tenant, version

    async def update_tenant(self, name: str, changes: Mapping[str, Any]) -> tuple[View, View, int]:
        before, after, version = await call_actor(self.feed.actor.update_tenant, name, changes)
        await self._changed(version)
        return before, after, version

    async def create_key(self, data: Mapping[str, Any]) -> tuple[View, str, int]:
        view, secret, version = await call_actor(self.feed.actor.create_key, data)
        await self._changed(version)
        return view, secret, version

    async def revoke_key(self, key_id: str) -> tuple[View, int]:
        view, version = await call_actor(self.feed.actor.revoke_key, key_id)
        await self._changed(version)
        return view, version

    async def tenant(self, name: str) -> View:
        return await call_actor(self.feed.actor.tenant, name)

    async def tenants(self) -> list[View]:
        return await call_actor(self.feed.actor.tenants)

    async def key(self, key_id: str) -> View:
        return await call_actor(self.feed.actor.key, key_id)

    async def keys(self, tenant: str | None = None) -> list[View]:
        return await call_actor(self.feed.actor.keys, tenant)
