"""The quota actor: one named, detached ledger of the leases every ingress replica holds.

Replicas call it only when a local balance runs short (a chunk at a time) and to give back
what they did not use; never once per request. Every grant is written to the store before it
is answered, on one worker thread in arrival order, so the event loop keeps answering while the
database works, and a restarted actor (Ray restarts it) reloads exactly what was handed out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import ray
from ray.actor import ActorHandle
from ray.exceptions import ActorDiedError

from gateway.quota.ledger import Ask, GiveBack, Grant, LedgerKey, QuotaLedger
from gateway.store import Store

log = logging.getLogger("llmgw.quota")

QUOTA_NAME = "llmgw-quota"
NAMESPACE = "llmgw"

T = TypeVar("T")


# No task retries: a lease or give-back cut short by a crash may have been applied, and only
# the replica knows whether sending it again is safe (see `LeaseBook`).
@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class QuotaActor:
    """A `QuotaLedger` persisted in the store, serving leases to every replica."""

    def __init__(self, store_url: str) -> None:
        # The schema is migrated on the first call, so the actor starts while the database
        # is away; asks fail (and replicas wait, then refuse) until it is back.
        self._store = Store(store_url)
        self._migrated = False
        self._ledger = QuotaLedger(self._store)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmgw-quota")
        self._counts = {"leases": 0, "give_backs": 0, "refused": 0}

    async def lease(self, asks: Sequence[Ask]) -> list[Grant]:
        """Answer each ask; what is granted is in the store before this returns."""
        self._counts["leases"] += 1
        grants = await self._run(self._ledger.lease, asks)
        self._counts["refused"] += sum(1 for g in grants if g.refused)
        return grants

    async def give_back(self, returns: Sequence[GiveBack]) -> None:
        """Take back unused leases and record debts, in the store before this returns."""
        self._counts["give_backs"] += 1
        await self._run(self._ledger.give_back, returns)

    async def out(self, subject: str, metric: str, window: str) -> float:
        """What is out for one key: spent plus leases held (for tests and status)."""
        return await self._run(self._ledger.out, LedgerKey(subject, metric, window))

    async def stats(self) -> dict[str, int]:
        """Calls answered since this actor (re)started, and whether Ray restarted it."""
        restarted = ray.get_runtime_context().was_current_actor_reconstructed
        return self._counts | {"restarted": int(bool(restarted))}

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        def call() -> T:
            if not self._migrated:
                self._store.migrate()
                self._migrated = True
            return fn(*args)

        return await asyncio.get_running_loop().run_in_executor(self._worker, call)


def get_or_create_quota_actor(
    store_url: str,
    *,
    name: str = QUOTA_NAME,
    namespace: str = NAMESPACE,
    resources: Mapping[str, float] | None = None,
) -> ActorHandle:
    """The cluster's quota actor, started (detached) by the first caller."""
    return QuotaActor.options(
        name=name,
        namespace=namespace,
        lifetime="detached",
        get_if_exists=True,
        **({"resources": resources} if resources else {}),
    ).remote(store_url)


class ActorLedger:
    """The quota actor behind the interface a `LeaseBook` uses (`gateway.quota.LedgerClient`)."""

    def __init__(self, actor: Any, reconnect: Callable[[], Any] | None = None) -> None:
        """`reconnect` returns a live actor (`get_or_create_quota_actor(...)`) should this one
        be gone for good."""
        self._actor = actor
        self._reconnect = reconnect

    async def lease(self, asks: Sequence[Ask]) -> list[Grant]:
        return await self._call("lease", list(asks))

    async def give_back(self, returns: Sequence[GiveBack]) -> None:
        await self._call("give_back", list(returns))

    async def _call(self, method: str, items: list[Any]) -> Any:
        try:
            return await getattr(self._actor, method).remote(items)
        except ActorDiedError:
            # The caller decides whether to send again; the next call finds a live actor.
            if self._reconnect is not None:
                try:
                    self._actor = self._reconnect()
                except Exception as exc:
                    log.warning("quota actor not found again (%r)", exc)
            raise
