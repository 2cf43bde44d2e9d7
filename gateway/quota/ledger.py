"""The quota ledger: what every replica together has taken and given back, per window.

Replicas take leases (chunks of requests, tokens or dollars) and spend them locally; the ledger
grants a lease only while what is out (granted minus returned) stays within a hard limit, so
leases never let N replicas admit N times a limit. Grants shrink as the limit nears. Every
grant is written to the backend before it is handed out: a restarted ledger reloads what was
granted and cannot grant it again.

`QuotaLedger` is synchronous and not thread-safe; its owner serialises calls (the quota actor
with a lock around a worker thread, `LocalLedger` by running on one event loop).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol


class LedgerKey(NamedTuple):
    """One ledger row: a subject (`tenant:acme`, `key:ID`), a metric and a window id."""

    subject: str
    metric: str
    window: str


@dataclass(frozen=True, slots=True)
class Ask:
    """A replica asks for at least `need` of `key`, whose limit is `limit`."""

    key: LedgerKey
    limit: float
    hard: bool
    need: float


@dataclass(frozen=True, slots=True)
class Grant:
    """The ledger's answer to one ask: `amount` granted (0 when refused), what is left of the
    limit after it, and, for a soft limit, whether it is now passed."""

    amount: float
    remaining: float
    refused: bool = False
    over: bool = False


@dataclass(frozen=True, slots=True)
class GiveBack:
    """A replica returns an unused lease (`amount` > 0) or reports spend beyond what it was
    granted (`amount` < 0: a call cost more than its reservation)."""

    key: LedgerKey
    amount: float


class LedgerBackend(Protocol):
    """Where the ledger's rows live: the store, or memory."""

    def ledger_rows(self, keys: Sequence[LedgerKey]) -> dict[LedgerKey, tuple[float, float]]:
        """(granted, returned) of each key that has a row."""
        ...

    def ledger_add(self, changes: Sequence[tuple[LedgerKey, float, float]]) -> None:
        """Add (granted, returned) deltas to each key's row, creating missing rows, atomically."""
        ...


@dataclass
class MemoryBackend:
    """Rows in a dict: for the in-process gateway and tests."""

    rows: dict[LedgerKey, tuple[float, float]] = field(default_factory=dict)

    def ledger_rows(self, keys: Sequence[LedgerKey]) -> dict[LedgerKey, tuple[float, float]]:
        return {k: self.rows[k] for k in keys if k in self.rows}

    def ledger_add(self, changes: Sequence[tuple[LedgerKey, float, float]]) -> None:
        for key, granted, returned in changes:
            g, r = self.rows.get(key, (0.0, 0.0))
            self.rows[key] = (g + granted, r + returned)


def _eps(limit: float) -> float:
    # Dollar figures are sums of float products: "exactly the limit" must compare equal.
    return 1e-9 * max(1.0, abs(limit))


@dataclass
class _Entry:
    granted: float
    returned: float
    touched: float

    @property
    def out(self) -> float:
        return self.granted - self.returned


class QuotaLedger:
    """Grants leases against limits, remembers what is out, persists every change first.

    A grant is `min(chunk_share * limit, remaining_share * remaining)`, but never less than the
    ask's need; for a hard limit never more than what remains (a need above it is refused).
    A soft limit grants anyway and reports `over` once passed.
    """

    def __init__(
        self,
        backend: LedgerBackend | None = None,
        *,
        chunk_share: float = 0.05,
        remaining_share: float = 0.25,
        forget_after_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend: LedgerBackend = backend if backend is not None else MemoryBackend()
        self.chunk_share = chunk_share
        self.remaining_share = remaining_share
        self._forget_after_s = forget_after_s
        self._clock = clock
        self._entries: dict[LedgerKey, _Entry] = {}
        self._swept = clock()

    def lease(self, asks: Sequence[Ask]) -> list[Grant]:
        """Answer each ask; the grants are persisted before this returns."""
        entries = self._entries_for([a.key for a in asks])
        grants: list[Grant] = []
        deltas: dict[LedgerKey, float] = {}
        for ask in asks:
            entry = entries[ask.key]
            out = entry.out + deltas.get(ask.key, 0.0)
            grant = self._size(ask, out)
            if grant.amount > 0:
                deltas[ask.key] = deltas.get(ask.key, 0.0) + grant.amount
            grants.append(grant)
        if deltas:
            self.backend.ledger_add([(key, amount, 0.0) for key, amount in deltas.items()])
            for key, amount in deltas.items():
                entries[key].granted += amount
        return grants

    def give_back(self, returns: Iterable[GiveBack]) -> None:
        """Take back unused leases and record spend beyond grants, persisted before this returns."""
        changes: dict[LedgerKey, list[float]] = {}
        for item in returns:
            change = changes.setdefault(item.key, [0.0, 0.0])
            if item.amount >= 0:
                change[1] += item.amount
            else:
                change[0] -= item.amount
        if not changes:
            return
        self.backend.ledger_add([(key, g, r) for key, (g, r) in changes.items()])
        now = self._clock()
        for key, (g, r) in changes.items():
            # Only rows already cached are moved; the others load with the change in them.
            if (entry := self._entries.get(key)) is not None:
                entry.granted += g
                entry.returned += r
                entry.touched = now

    def out(self, key: LedgerKey) -> float:
        """What is out for `key`: spent, plus leases not yet given back."""
        return self._entries_for([key])[key].out

    # ------------------------------------------------------------------ internals

    def _size(self, ask: Ask, out: float) -> Grant:
        limit, need = ask.limit, max(0.0, ask.need)
        remaining = limit - out
        chunk = max(need, min(self.chunk_share * limit, self.remaining_share * max(0.0, remaining)))
        if ask.hard:
            if need > remaining + _eps(limit):
                return Grant(0.0, remaining, refused=True)
            amount = max(need, min(chunk, remaining))
        else:
            amount = chunk if chunk <= remaining else need
        if amount <= 0:
            return Grant(0.0, remaining)
        left = remaining - amount
        return Grant(amount, left, over=not ask.hard and left < -_eps(limit))

    def _entries_for(self, keys: Sequence[LedgerKey]) -> dict[LedgerKey, _Entry]:
        now = self._clock()
        self._sweep(now)
        missing = [k for k in dict.fromkeys(keys) if k not in self._entries]
        if missing:
            rows = self.backend.ledger_rows(missing)
            for key in missing:
                granted, returned = rows.get(key, (0.0, 0.0))
                self._entries[key] = _Entry(granted, returned, now)
        found = {k: self._entries[k] for k in keys}
        for entry in found.values():
            entry.touched = now
        return found

    def _sweep(self, now: float) -> None:
        # Rows live in the backend: entries not used for a while (past windows) are dropped
        # from memory and reloaded should anyone touch them again.
        if now - self._swept < self._forget_after_s / 4:
            return
        self._swept = now
        stale = [k for k, e in self._entries.items() if now - e.touched > self._forget_after_s]
        for key in stale:
            del self._entries[key]


class LocalLedger:
    """A `QuotaLedger` behind the async interface a `LeaseBook` uses, in this process."""

    def __init__(self, ledger: QuotaLedger | None = None) -> None:
        self.ledger = ledger if ledger is not None else QuotaLedger()

    async def lease(self, asks: Sequence[Ask]) -> list[Grant]:
        return self.ledger.lease(asks)

    async def give_back(self, returns: Sequence[GiveBack]) -> None:
        self.ledger.give_back(returns)
