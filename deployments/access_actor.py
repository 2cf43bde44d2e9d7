"""The access actor: one named, detached owner of tenants and API keys for the whole cluster.

Admin changes go through it to the store; every ingress replica holds its `AccessSnapshot`
and keeps a `watch` long poll open, so a new, revoked or suspended key reaches every replica
within the watch's round trip (milliseconds), and no request ever calls the actor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import ray
from ray.actor import ActorHandle

from gateway.store import Store
from gateway.tenancy.access import AccessSnapshot
from gateway.tenancy.backend import DirectoryBackend, View
from gateway.tenancy.directory import Directory

log = logging.getLogger("llmgw.access")

ACCESS_NAME = "llmgw-access"
NAMESPACE = "llmgw"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class AccessActor:
    """A `DirectoryBackend` over the store, with long-poll `watch` for replicas' snapshots.

    Store work runs in a thread, so watches never wait on SQL.
    """

    def __init__(self, store_url: str) -> None:
        store = Store(store_url)
        store.migrate()
        self._backend = DirectoryBackend(Directory(store), on_change=self._notify)
        self._changed = asyncio.Event()
        snapshot = self._backend.snapshot
        log.info(
            "access actor up at version %d with %d tenants and %d keys",
            snapshot.version,
            len(snapshot.tenants),
            len(snapshot.keys),
        )

    async def create_tenant(self, data: Mapping[str, Any]) -> tuple[View, int]:
        return await self._backend.create_tenant(data)

    async def update_tenant(self, name: str, changes: Mapping[str, Any]) -> tuple[View, View, int]:
        return await self._backend.update_tenant(name, changes)

    # Not retried across a restart: a retried creation would make a second, orphaned key.
    @ray.method(max_task_retries=0)
    async def create_key(self, data: Mapping[str, Any]) -> tuple[View, str, int]:
        return await self._backend.create_key(data)

    async def revoke_key(self, key_id: str) -> tuple[View, int]:
        return await self._backend.revoke_key(key_id)

    async def tenant(self, name: str) -> View:
        return await self._backend.tenant(name)

    async def tenants(self) -> list[View]:
        return await self._backend.tenants()

    async def key(self, key_id: str) -> View:
        return await self._backend.key(key_id)

    async def keys(self, tenant: str | None = None) -> list[View]:
        return await self._backend.keys(tenant)

    async def snapshot(self) -> AccessSnapshot:
        return self._backend.snapshot

    async def watch(self, known_version: int, timeout_s: float) -> AccessSnapshot | None:
        """Long poll: the snapshot as soon as its version differs from `known_version`, or
        None after `timeout_s`."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while self._backend.snapshot.version == known_version:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return None
        return self._backend.snapshot

    def _notify(self, snapshot: AccessSnapshot) -> None:
        # Wake every pending watch; later watches wait on a fresh event.
        self._changed.set()
        self._changed = asyncio.Event()


def get_or_create_access(
    store_url: str, *, name: str = ACCESS_NAME, namespace: str = NAMESPACE
) -> ActorHandle:
    """The cluster's access actor, started (detached) by the first caller."""
    return AccessActor.options(
        name=name, namespace=namespace, lifetime="detached", get_if_exists=True
    ).remote(store_url)
