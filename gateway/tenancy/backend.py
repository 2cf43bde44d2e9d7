"""The tenancy backend the admin routes call: tenants and keys as JSON-ready views.

`DirectoryBackend` runs the `Directory` off the event loop, one change at a time, and keeps
the current `AccessSnapshot`; the access actor wraps one, and so does the in-process gateway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from gateway.tenancy.access import AccessSnapshot
from gateway.tenancy.directory import Directory, key_view

T = TypeVar("T")

View = dict[str, Any]


class TenancyBackend(Protocol):
    """Tenant and key changes and reads; each change returns the new access version."""

    async def create_tenant(self, data: Mapping[str, Any]) -> tuple[View, int]: ...

    async def update_tenant(
        self, name: str, changes: Mapping[str, Any]
    ) -> tuple[View, View, int]: ...

    async def tenant(self, name: str) -> View: ...

    async def tenants(self) -> list[View]: ...

    async def create_key(self, data: Mapping[str, Any]) -> tuple[View, str, int]: ...

    async def revoke_key(self, key_id: str) -> tuple[View, int]: ...

    async def key(self, key_id: str) -> View: ...

    async def keys(self, tenant: str | None = None) -> list[View]: ...


class DirectoryBackend:
    """`TenancyBackend` over a `Directory`, holding the snapshot of the last change."""

    def __init__(
        self, directory: Directory, on_change: Callable[[AccessSnapshot], None] | None = None
    ) -> None:
        self.directory = directory
        self.snapshot = directory.snapshot()
        self._on_change = on_change
        self._lock = asyncio.Lock()

    async def create_tenant(self, data: Mapping[str, Any]) -> tuple[View, int]:
        spec, version = await self._change(self.directory.create_tenant, data)
        return spec.model_dump(mode="json"), version

    async def update_tenant(self, name: str, changes: Mapping[str, Any]) -> tuple[View, View, int]:
        before, after, version = await self._change(self.directory.update_tenant, name, changes)
        return before.model_dump(mode="json"), after.model_dump(mode="json"), version

    async def tenant(self, name: str) -> View:
        return (await asyncio.to_thread(self.directory.tenant, name)).model_dump(mode="json")

    async def tenants(self) -> list[View]:
        return [t.model_dump(mode="json") for t in await asyncio.to_thread(self.directory.tenants)]

    async def create_key(self, data: Mapping[str, Any]) -> tuple[View, str, int]:
        key, secret, version = await self._change(self.directory.create_key, data)
        return key_view(key), secret, version

    async def revoke_key(self, key_id: str) -> tuple[View, int]:
        key, version = await self._change(self.directory.revoke_key, key_id)
        return key_view(key), version

    async def key(self, key_id: str) -> View:
        return key_view(await asyncio.to_thread(self.directory.key, key_id))

    async def keys(self, tenant: str | None = None) -> list[View]:
        return [key_view(k) for k in await asyncio.to_thread(self.directory.keys, tenant)]

    async def _change(self, change: Callable[..., T], *args: Any) -> T:
        async with self._lock:
            result = await asyncio.to_thread(change, *args)
            self.snapshot = await asyncio.to_thread(self.directory.snapshot)
        if self._on_change is not None:
            self._on_change(self.snapshot)
        return result
