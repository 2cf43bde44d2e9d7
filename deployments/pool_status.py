"""Calls waiting for a pool replica that Serve cannot start fail fast instead of hanging.

Serve's handle queues a call until the pool has a replica to take it. A pool whose replicas
fail to start (DEPLOY_FAILED, or UNHEALTHY when it had one and cannot replace it) never gets
one, and Serve does not fail the calls already queued (measured with Ray 2.60: they wait out
the caller's own timeout, 300 s by default; only calls made after a DEPLOY_FAILED fail at
once). A pool starting a replica (scaling from zero takes ~10-20 s) is not failing: its calls
wait. Serve's verdict itself comes after its three failed starts: ~25-35 s after a first call
to a pool at zero replicas, on two busy cores (tests/integration/test_pool_deploy_failed.py).

So each replica keeps the calls in flight on each pool's handle, and a background check, each
`check_s`, asks Serve for the pools' statuses only when some call has waited for a replica a
whole interval, and refuses those still waiting at a pool that cannot start one. The request
path only adds a call to a set and takes it out again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.errors import ServiceUnavailableError

log = logging.getLogger("llmgw.pool_status")

# Serve's verdicts on a deployment that cannot get a replica by waiting: its replicas failed
# to start as many times as Serve retries (DEPLOY_FAILED on a deploy; UNHEALTHY for that
# reason once it had run). UNHEALTHY for any other reason (a replica lost with its node, a
# failed health check) is a pool replacing a replica: its calls wait, as do those of a pool
# UPDATING or UPSCALING.
NO_REPLICA = frozenset({"DEPLOY_FAILED", "UNHEALTHY (REPLICA_STARTUP_FAILED)"})
# How often waiting calls are looked at: the bound on how long a call waits at a failed pool.
CHECK_S = 1.0

Statuses = Callable[[], Awaitable[dict[str, str]]]


def assigned(response: Any) -> bool:
    """Whether Serve has handed a handle call to a replica (a call still queued has not)."""
    # Serve keeps the assignment in this future; were it renamed, every call would count as
    # assigned and none would be refused: the behaviour before this module, never a false 503.
    future = getattr(response, "_replica_result_future", None)
    return future is None or future.done()


def no_replica(kind: str, deployment: str, why: str) -> ServiceUnavailableError:
    """The error for a call to a pool that cannot start a replica (a 503: falls back)."""
    return ServiceUnavailableError(
        f"provider pool {deployment} (provider type '{kind}') has no replica available: "
        f"{why} (see `serve status`)",
        code="pool_no_replica",
    )


def serve_statuses(app: str) -> Statuses:
    """The statuses of the deployments of `app`, by deployment name, from Serve's controller
    (`serve.status()`, a blocking call, run off the event loop)."""

    async def statuses() -> dict[str, str]:
        from ray import serve

        status = await asyncio.to_thread(serve.status)
        found = status.applications.get(app)
        if found is None:
            return {}
        return {name: _verdict(d) for name, d in found.deployments.items()}

    return statuses


def _verdict(deployment: Any) -> str:
    """A deployment's status, with why when it is UNHEALTHY (`NO_REPLICA`'s terms)."""
    status = str(deployment.status.value)
    if status != "UNHEALTHY":
        return status
    trigger = getattr(deployment, "status_trigger", None)
    return f"{status} ({getattr(trigger, 'value', trigger)})"


class PoolWatch:
    """The calls in flight on each pool's handle, and the check that refuses those waiting
    for a replica of a pool that cannot start one."""

    def __init__(
        self, deployments: dict[str, str], statuses: Statuses, check_s: float = CHECK_S
    ) -> None:
        self.deployments = deployments  # provider type -> the pool's deployment name
        self.waiting: dict[str, set[Any]] = {kind: set() for kind in deployments}
        self.refused: dict[Any, ServiceUnavailableError] = {}
        self.check_s = check_s
        self._statuses = statuses
        self._queued: set[Any] = set()  # unassigned at the last check
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Check in the background on the running loop (none running: nothing is checked)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.warning("no event loop: calls to a pool without a replica are not checked")
            return
        self._task = loop.create_task(self._run(), name="llmgw-pool-watch")

    def refusal(self, response: Any) -> ServiceUnavailableError | None:
        """Why the check cancelled this call, if it did."""
        return self.refused.pop(response, None) if self.refused else None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check_s)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("pool status check failed (%r); retrying", exc)

    async def check(self) -> None:
        """Refuse the calls that were already waiting for a replica at the last check, are
        still waiting, and wait on a pool Serve reports as unable to start one."""
        queued = {
            kind: [r for r in calls if not assigned(r)] for kind, calls in self.waiting.items()
        }
        due = {
            kind: [r for r in calls if r in self._queued] for kind, calls in queued.items() if calls
        }
        self._queued = {r for calls in queued.values() for r in calls}
        if self.refused:  # calls that left before reading their refusal
            self.refused = {
                r: e for r, e in self.refused.items() if any(r in c for c in self.waiting.values())
            }
        if not any(due.values()):
            return
        statuses = await self._statuses()
        for kind, calls in due.items():
            deployment = self.deployments[kind]
            status = statuses.get(deployment)
            if status not in NO_REPLICA or not calls:
                continue
            error = no_replica(kind, deployment, f"Serve reports it {status}")
            log.warning("%s; refusing %d waiting call(s)", error.message, len(calls))
            for response in calls:
                if not assigned(response):
                    self.refused[response] = error
                    response.cancel()
