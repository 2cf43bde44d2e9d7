"""The side channel's directory (see `deployments.side_channel`): one detached actor per
cluster that lists where pool replicas listen, which of them are draining, and the token
every connection opens with.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

import ray

from deployments.side_channel import EXPIRE_S, TOKEN_BYTES, Listing

DIRECTORY_NAME = "llmgw-pool-directory"
NAMESPACE = "llmgw"


class PoolDirectory:
    """Where pool replicas' side channels are, and the token their connections open with.

    A replica stopping is first *draining*: listed for no new call, while the callers keep
    the connections its calls in flight are on; once drained (or silent for `EXPIRE_S`, its
    node gone) it is dropped, and callers close every connection to it."""

    def __init__(self) -> None:
        self._token = secrets.token_bytes(TOKEN_BYTES)
        self._endpoints: dict[str, tuple[str, tuple[str, int], float]] = {}
        self._draining: set[str] = set()
        # From the clock: a restarted directory (a new token) never repeats a version a
        # caller already holds, so every caller takes the new token.
        self._version = time.time_ns()

    def announce(self, replica: str, kind: str, address: tuple[str, int]) -> bytes:
        """A replica's heartbeat (a draining one's too); returns the token its listener checks."""
        known = self._endpoints.get(replica)
        self._endpoints[replica] = (kind, tuple(address), time.monotonic())  # type: ignore[assignment]
        if known is None or known[:2] != (kind, tuple(address)):
            self._version += 1
        return self._token

    def withdraw(self, replica: str, drained: bool = False) -> None:
        """A replica stopping: draining first (no new calls), then `drained` (gone)."""
        if drained:
            self._draining.discard(replica)
            if self._endpoints.pop(replica, None) is not None:
                self._version += 1
        elif replica in self._endpoints and replica not in self._draining:
            self._draining.add(replica)
            self._version += 1

    def endpoints(self, known_version: int) -> Listing | None:
        """Every live endpoint by pool type and the draining ones' addresses, or None when
        `known_version` is current."""
        now = time.monotonic()
        for replica, (_, _, seen) in list(self._endpoints.items()):
            if now - seen > EXPIRE_S:
                del self._endpoints[replica]
                self._draining.discard(replica)
                self._version += 1
        if known_version == self._version:
            return None
        by_kind: dict[str, list] = {}
        draining = []
        for replica, (kind, address, _) in self._endpoints.items():
            if replica in self._draining:
                draining.append(address)
            else:
                by_kind.setdefault(kind, []).append(address)
        return self._version, self._token, by_kind, draining


# The actor keeps the class's name (`ray::PoolDirectory` in a process list).
PoolDirectoryActor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)(PoolDirectory)


def get_or_create_directory(resources: Mapping[str, float] | None = None) -> Any:
    """The cluster's pool directory, started (detached) by the first caller."""
    return PoolDirectoryActor.options(
        name=DIRECTORY_NAME,
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        **({"resources": resources} if resources else {}),
    ).remote()
