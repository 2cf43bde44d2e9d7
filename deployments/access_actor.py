"""The access actor: one named, detached owner of tenants and API keys for the whole cluster.

Admin changes go through it to the store; every ingress replica holds its `AccessSnapshot`
and keeps a `watch` long poll open, so a new, revoked or suspended key reaches every replica
within the watch's round trip (milliseconds), and no request ever calls the actor.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import ray
from ray.actor import ActorHandle

from deployments.long_poll import ChangeSignal
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
        self._changed = ChangeSignal()
        self._backend = DirectoryBackend(Directory(store), on_change=self._notify)
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
        backend = self._backend
        if await self._changed.wait_until(
            lambda: backend.snapshot.version != known_version, timeout_s
        ):
            return backend.snapshot
        return None

    def _notify(self, snapshot: AccessSnapshot) -> None:
        self._changed.notify()


def get_or_create_access(
    store_url: str,
    *,
    name: str = ACCESS_NAME,
    namespace: str = NAMESPACE,
    resources: Mapping[str, float] | None = None,
) -> ActorHandle:
    """The cluster's access actor, started (detached) by the first caller."""
    return AccessActor.options(
        name=name,
        namespace=namespace,
        lifetime="detached",
        get_if_exists=True,
        **({"resources": resources} if resources else {}),
    ).remote(store_url)
