"""The registry snapshots a provider pool resolves calls against, by the version each call was
planned on, so a call carries two names and a number instead of both configs pickled.

A pool needs a snapshot only when a call names a version newer than the newest it holds
(after an admin change, or at start): it then fetches the registry actor's current snapshot
once for all the calls waiting on it. Versions change rarely, so the request path almost
never waits; a call never fails for a version it could not see yet unless the registry stays
unreachable for `wait_s`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from gateway.errors import ServiceUnavailableError
from gateway.pipeline.upstream import LATEST, UpstreamCall
from gateway.registry.snapshot import RegistrySnapshot

log = logging.getLogger("llmgw.registry_versions")

Fetch = Callable[[], Awaitable[RegistrySnapshot]]


class RegistryVersions:
    """The newest registry snapshots this process fetched, keyed by version."""

    def __init__(
        self, fetch: Fetch, *, keep: int = 4, wait_s: float = 5.0, fresh_s: float = 1.0
    ) -> None:
        self._fetch = fetch
        self._keep = keep
        self._wait_s = wait_s
        self._fresh_s = fresh_s
        self._fetched_at = float("-inf")
        self._held: dict[int, RegistrySnapshot] = {}
        self._newest: RegistrySnapshot | None = None
        self._fetching: asyncio.Future[RegistrySnapshot] | None = None

    async def at(self, version: int, models: Iterable[str] = ()) -> RegistrySnapshot:
        """The snapshot of `version` (LATEST: the newest held), fetched if not held, that has
        the named models.

        A version older than the newest held but not held itself (the caller's snapshot lags
        a change) is served by the newest: the names it planned on are the same models.
        """
        held = self._held.get(version) or self._newest
        if (
            held is not None
            and (version == LATEST or version <= held.version)
            and all(name in held.models for name in models)
        ):
            if version == LATEST and time.monotonic() - self._fetched_at > self._fresh_s:
                # A caller that names no version gets the newest: refreshed in the
                # background, never waited on.
                self._refresh()
            return held
        # Not held yet, or the names are not in what is held (a store reset the versions).
        return await self._at_least(version)

    async def resolve(self, call: UpstreamCall) -> None:
        """Fill in the call's provider and model configs from the version it names."""
        snapshot = await self.at(call.version, (call.model,))
        if not call.resolve(snapshot.providers, snapshot.models):
            raise mismatch([call.model], snapshot.version, call.version, call.provider)

    async def _at_least(self, version: int) -> RegistrySnapshot:
        """A freshly fetched snapshot of `version` or newer, fetching again briefly while the
        registry has not published it to this process's view yet."""
        deadline = time.monotonic() + self._wait_s
        delay = 0.02
        while True:
            try:
                snapshot = await self._shared_fetch()
                if version == LATEST or snapshot.version >= version:
                    return self._held.get(version, snapshot)
                why = f"the registry answered version {snapshot.version}"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                why = f"the registry is unreachable ({type(exc).__name__})"
            if time.monotonic() + delay > deadline:
                raise ServiceUnavailableError(
                    f"registry version {version} did not reach the provider pool within "
                    f"{self._wait_s:g} s: {why}",
                    code="registry_version_unknown",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def _shared_fetch(self) -> RegistrySnapshot:
        """One fetch for every call waiting on it at the time."""
        self._refresh()
        assert self._fetching is not None
        return await asyncio.shield(self._fetching)

    def _refresh(self) -> None:
        if self._fetching is None:
            self._fetching = asyncio.ensure_future(self._fetch_and_keep())
            self._fetching.add_done_callback(self._fetched)

    def _fetched(self, done: asyncio.Future[RegistrySnapshot]) -> None:
        self._fetching = None
        if not done.cancelled():
            done.exception()  # retrieved here, so an error nobody awaited is not logged

    async def _fetch_and_keep(self) -> RegistrySnapshot:
        snapshot = await self._fetch()
        self._fetched_at = time.monotonic()
        self._held[snapshot.version] = snapshot
        if self._newest is None or snapshot.version >= self._newest.version:
            self._newest = snapshot
        for old in sorted(self._held)[: -self._keep]:
            del self._held[old]
        return snapshot


def mismatch(
    models: list[str], have: int, planned: int, provider: str | None = None
) -> ServiceUnavailableError:
    """The error for a call naming models its registry version does not hold."""
    names = ", ".join(f"'{name}'" for name in models)
    return ServiceUnavailableError(
        f"model {names} is not in registry version {have} (the call was planned on {planned})",
        code="registry_version_mismatch",
        provider=provider,
    )


def registry_fetch(timeout_s: float = 10.0) -> Fetch:
    """Fetch the current snapshot from the cluster's registry actor, found by name (the
    ingress starts it) and found again after it died."""
    import ray

    from deployments.registry_actor import NAMESPACE, REGISTRY_NAME

    actor: Any = None

    async def fetch() -> RegistrySnapshot:
        nonlocal actor
        if actor is None:
            actor = await asyncio.to_thread(ray.get_actor, REGISTRY_NAME, namespace=NAMESPACE)
        try:
            return await asyncio.wait_for(actor.snapshot.remote(), timeout_s)
        except ray.exceptions.ActorDiedError:
            actor = None
            raise

    return fetch
