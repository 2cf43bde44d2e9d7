"""A replica's side of the quota leases: local balances it spends without asking anyone.

A request reserves what it may cost against every quota it counts against, all or nothing,
from balances this replica holds. Only a balance that falls short asks the ledger, once per
key however many requests wait on it (and a large balance running low is topped up in the
background). After the call the reservation is settled with the real figures: what was not
used goes back to the balance, a cost above the reservation is debt the ledger is told of.
Balances idle for a few seconds, or of a window that has ended, are given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gateway.quota.ledger import Ask, GiveBack, Grant, LedgerKey, LocalLedger
from gateway.quota.windows import WindowClock
from gateway.tenancy.access import Quota

log = logging.getLogger("llmgw.quota")

_EPS = 1e-9


class LedgerClient(Protocol):
    """The ledger as a replica reaches it: the quota actor, or a `LocalLedger`."""

    async def lease(self, asks: Sequence[Ask]) -> list[Grant]: ...

    async def give_back(self, returns: Sequence[GiveBack]) -> None: ...


class QuotaExceeded(Exception):
    """A hard quota cannot cover the request; `retry_after_s` is when its window ends."""

    def __init__(self, quota: Quota, retry_after_s: float) -> None:
        super().__init__(quota.label)
        self.quota = quota
        self.retry_after_s = retry_after_s


class QuotaUnavailable(Exception):
    """The ledger could not be reached in time, and the local balance does not cover the
    request: refused rather than let through unaccounted."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """What one request holds: an amount per quota, and the soft quotas it is already over."""

    items: tuple[tuple[Quota, LedgerKey, float], ...]
    over: tuple[Quota, ...] = ()


@dataclass(slots=True)
class _Balance:
    window_end: float
    amount: float = 0.0
    used_at: float = 0.0
    last_grant: float = 0.0
    over: bool = False
    refused_until: float = 0.0
    refused_remaining: float = 0.0
    asking: asyncio.Future[None] | None = None


@dataclass
class LeaseBook:
    """Local balances per (subject, metric, window), leased from a ledger.

    `idle_s`: a balance unused this long goes back; `ask_timeout_s`: how long a request waits
    for the ledger (an actor restarting) before a `QuotaUnavailable`; `refusal_ttl_s`: after a
    refusal, requests needing as much are refused here without asking again for this long.
    """

    ledger: LedgerClient = field(default_factory=LocalLedger)
    clock: Callable[[], float] = time.time
    idle_s: float = 5.0
    tick_s: float = 1.0
    ask_timeout_s: float = 10.0
    refusal_ttl_s: float = 1.0
    _balances: dict[LedgerKey, _Balance] = field(default_factory=dict, init=False)
    _windows: WindowClock = field(default_factory=WindowClock, init=False)
    _pending: list[GiveBack] = field(default_factory=list, init=False)
    _ticker: asyncio.Task[None] | None = field(default=None, init=False)
    _prefetches: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _closed: bool = field(default=False, init=False)

    async def reserve(self, demand: Sequence[tuple[Quota, float]]) -> Reservation:
        """Hold `amount` of each quota for one request, all or nothing.

        Raises `QuotaExceeded` naming the first hard quota that cannot cover it, or
        `QuotaUnavailable` when the ledger is needed and does not answer in time.
        """
        if not demand:
            return Reservation(())
        self._start_ticker()
        now = self.clock()
        items: list[tuple[Quota, LedgerKey, float]] = []
        for quota, amount in demand:
            window = self._windows.window(quota.period, now)
            key = LedgerKey(quota.subject, quota.metric, window.id)
            balance = self._balances.get(key)
            if balance is None:
                balance = self._balances[key] = _Balance(window.end)
            balance.used_at = now  # an attempt is a use: not given back while it waits
            items.append((quota, key, max(0.0, amount)))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ask_timeout_s
        while True:
            short = [(q, k, a) for q, k, a in items if self._balances[k].amount < a - _EPS]
            if not short:
                return self._take(items, now)
            for quota, key, amount in short:
                balance = self._balances[key]
                if (
                    quota.hard
                    and balance.refused_until > self.clock()
                    and amount - balance.amount > balance.refused_remaining + _EPS
                ):
                    raise QuotaExceeded(quota, self._retry_after(balance))
            waiting = [f for _, k, _ in short if (f := self._balances[k].asking) is not None]
            asking = [(q, k, a) for q, k, a in short if self._balances[k].asking is None]
            if asking:
                refused = await self._ask(asking, deadline)
                for quota, key, amount in asking:
                    if key in refused and self._balances[key].amount < amount - _EPS:
                        raise QuotaExceeded(quota, self._retry_after(self._balances[key]))
            else:
                left = deadline - loop.time()
                if left <= 0:
                    raise QuotaUnavailable("the quota ledger did not answer in time")
                await asyncio.wait(waiting, timeout=left)

    def settle(self, reservation: Reservation, spent: Mapping[str, float]) -> None:
        """Settle with what the call really used, by metric (a metric not named is taken as
        reserved): the unused part goes back to the balance, an excess becomes debt."""
        now = self.clock()
        for quota, key, reserved in reservation.items:
            used = spent.get(quota.metric, reserved)
            balance = self._balances.get(key)
            if balance is None:
                balance = self._balances[key] = _Balance(now)  # ended: given back next tick
            balance.amount += reserved - used
            balance.used_at = now

    def release(self, reservation: Reservation) -> None:
        """Give the whole reservation back to the balance: no call was made, or it failed."""
        self.settle(reservation, {q.metric: 0.0 for q, _, _ in reservation.items})

    def balance(self, quota: Quota) -> float:
        """What this replica holds of `quota` in the current window (for tests and status)."""
        window = self._windows.window(quota.period, self.clock())
        found = self._balances.get(LedgerKey(quota.subject, quota.metric, window.id))
        return found.amount if found is not None else 0.0

    async def give_back_idle(self) -> None:
        """Report debts now, and give back balances idle for `idle_s` or of ended windows."""
        now = self.clock()
        for key, balance in list(self._balances.items()):
            if balance.asking is not None:
                continue
            ended = balance.window_end <= now
            if balance.amount < 0 or (
                balance.amount > 0 and (ended or now - balance.used_at >= self.idle_s)
            ):
                self._pending.append(GiveBack(key, balance.amount))
                balance.amount = 0.0
            if ended and balance.amount == 0 and now - balance.used_at > self._forget_s:
                del self._balances[key]
        await self._send_pending()

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Give back every balance (graceful stop)."""
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
        for task in list(self._prefetches):
            task.cancel()
        for key, balance in self._balances.items():
            if balance.amount != 0:
                self._pending.append(GiveBack(key, balance.amount))
                balance.amount = 0.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._send_pending(), timeout_s)
        if self._pending:
            log.error("quota leases: %d give-backs not delivered at stop", len(self._pending))

    # ------------------------------------------------------------------ internals

    @property
    def _forget_s(self) -> float:
        # Longer than a reservation may wait on the ledger, so none loses its balance midway.
        return self.idle_s + self.ask_timeout_s

    def _take(self, items: list[tuple[Quota, LedgerKey, float]], now: float) -> Reservation:
        over: list[Quota] = []
        for quota, key, amount in items:
            balance = self._balances[key]
            balance.amount -= amount
            balance.used_at = now
            if balance.over and not quota.hard:
                over.append(quota)
            if (
                balance.last_grant >= 2 * amount
                and balance.amount < balance.last_grant / 2
                and balance.asking is None
                and balance.refused_until <= now
                and not self._closed
            ):
                task = asyncio.get_running_loop().create_task(self._prefetch(quota, key))
                self._prefetches.add(task)
                task.add_done_callback(self._prefetches.discard)
        return Reservation(tuple(items), tuple(over))

    async def _prefetch(self, quota: Quota, key: LedgerKey) -> None:
        try:
            deadline = asyncio.get_running_loop().time() + self.ask_timeout_s
            await self._ask([(quota, key, self._balances[key].amount)], deadline)
        except Exception as exc:  # the next request that falls short asks again
            log.debug("quota prefetch for %s failed: %r", key, exc)

    async def _ask(
        self, items: list[tuple[Quota, LedgerKey, float]], deadline: float
    ) -> set[LedgerKey]:
        """One ledger call for every short key; returns the keys it refused."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        asks = []
        for quota, key, amount in items:
            balance = self._balances[key]
            balance.asking = done
            asks.append(Ask(key, quota.limit, quota.hard, max(0.0, amount - balance.amount)))
        try:
            grants = await self._lease(asks, deadline)
        finally:
            for _, key, _ in items:
                self._balances[key].asking = None
            done.set_result(None)
        refused: set[LedgerKey] = set()
        now = self.clock()
        for ask, grant in zip(asks, grants, strict=True):
            balance = self._balances[ask.key]
            balance.amount += grant.amount
            balance.over = grant.over
            if grant.amount > 0:
                balance.last_grant = grant.amount
            if grant.refused:
                refused.add(ask.key)
                balance.refused_until = now + self.refusal_ttl_s
                balance.refused_remaining = max(0.0, grant.remaining)
        return refused

    async def _lease(self, asks: list[Ask], deadline: float) -> list[Grant]:
        loop = asyncio.get_running_loop()
        pause = 0.05
        while True:
            left = deadline - loop.time()
            try:
                return await asyncio.wait_for(self.ledger.lease(asks), max(left, 0.001))
            except Exception as exc:
                # An actor restarting answers again soon; a lease granted by a call that
                # failed stays counted as out (the tenant loses headroom, never gains it).
                if deadline - loop.time() <= pause:
                    raise QuotaUnavailable(f"the quota ledger did not answer: {exc!r}") from exc
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

    async def _send_pending(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            await self.ledger.give_back(batch)
        except Exception as exc:
            # Debts are sent again (counted twice at worst); returns are not, as one that did
            # arrive before the failure would otherwise be returned twice and free spend.
            debts = [g for g in batch if g.amount < 0]
            self._pending.extend(debts)
            log.warning(
                "quota leases: give-back failed (%r); %d debts kept, %d returns dropped",
                exc,
                len(debts),
                len(batch) - len(debts),
            )

    def _retry_after(self, balance: _Balance) -> float:
        return max(1.0, balance.window_end - self.clock())

    def _start_ticker(self) -> None:
        if self._closed or (self._ticker is not None and not self._ticker.done()):
            return
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="llmgw-leases")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self.give_back_idle()
            except Exception:
                log.exception("quota leases: giving back idle balances failed")
