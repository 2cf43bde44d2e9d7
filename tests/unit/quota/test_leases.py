"""A replica's lease book: reserve all or nothing, settle, release, give back, and what many
replicas sharing one ledger let through."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from gateway.quota.leases import LeaseBook, QuotaExceeded, QuotaUnavailable
from gateway.quota.ledger import Ask, GiveBack, Grant, LedgerKey, LocalLedger, QuotaLedger
from gateway.tenancy.access import Quota

T0 = datetime(2026, 12, 3, 7, 15, 10, tzinfo=UTC).timestamp()
RPM = Quota("tenant:acme", "requests", "minute", 10)
BUDGET = Quota("tenant:acme", "usd", "day", 1.0)
SOFT = Quota("key:k1", "usd", "month", 0.5, hard=False)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingLedger(LocalLedger):
    """A local ledger that counts calls, and can be made to fail or to answer slowly."""

    def __init__(self, ledger: QuotaLedger | None = None) -> None:
        super().__init__(ledger)
        self.leases = 0
        self.give_backs = 0
        self.failures = 0
        self.delay_s = 0.0

    async def lease(self, asks: Sequence[Ask]) -> list[Grant]:
        self.leases += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("actor restarting")
        return await super().lease(asks)

    async def give_back(self, returns: Sequence[GiveBack]) -> None:
        self.give_backs += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionError("actor restarting")
        await super().give_back(returns)


def key(quota: Quota, window: str) -> LedgerKey:
    return LedgerKey(quota.subject, quota.metric, window)


async def test_reserve_settle_and_give_back_idle_balances() -> None:
    clock = Clock()
    ledger = CountingLedger()
    book = LeaseBook(ledger, clock=clock, idle_s=5)
    held = await book.reserve([(BUDGET, 0.2)])
    out = ledger.ledger.out(key(BUDGET, "2026-12-03"))
    assert out >= 0.2 and book.balance(BUDGET) == pytest.approx(out - 0.2)
    book.settle(held, {"usd": 0.05})  # the call cost less than its worst case
    assert book.balance(BUDGET) == pytest.approx(out - 0.05)
    clock.now += 6
    await book.give_back_idle()
    assert book.balance(BUDGET) == 0
    assert ledger.ledger.out(key(BUDGET, "2026-12-03")) == pytest.approx(0.05)


async def test_release_returns_the_whole_reservation() -> None:
    clock = Clock()
    ledger = LocalLedger()
    book = LeaseBook(ledger, clock=clock)
    held = await book.reserve([(BUDGET, 0.3), (RPM, 1)])
    book.release(held)
    clock.now += 10
    await book.give_back_idle()
    assert ledger.ledger.out(key(BUDGET, "2026-12-03")) == 0
    assert ledger.ledger.out(key(RPM, "2026-12-03T07:15")) == 0


async def test_reservation_is_all_or_nothing_and_names_the_limit() -> None:
    book = LeaseBook(LocalLedger(), clock=Clock())
    await book.reserve([(BUDGET, 0.9)])
    rpm_before = book.balance(RPM)
    with pytest.raises(QuotaExceeded) as refused:
        await book.reserve([(RPM, 1), (BUDGET, 0.2)])
    assert refused.value.quota == BUDGET
    assert "tenant 'acme': $1.00 per day" in str(refused.value)
    # The rate limit's lease taken on the way is held, not spent: nothing was reserved.
    assert book.balance(RPM) >= rpm_before
    assert (await book.reserve([(RPM, 1)])).items


async def test_rate_refusal_says_when_the_minute_ends() -> None:
    book = LeaseBook(LocalLedger(), clock=Clock())
    for _ in range(10):
        await book.reserve([(RPM, 1)])
    with pytest.raises(QuotaExceeded) as refused:
        await book.reserve([(RPM, 1)])
    assert refused.value.retry_after_s == pytest.approx(50)


async def test_a_cost_above_its_reservation_is_debt_the_ledger_is_told() -> None:
    clock = Clock()
    ledger = LocalLedger()
    book = LeaseBook(ledger, clock=clock)
    held = await book.reserve([(BUDGET, 1.0)])  # all of it
    book.settle(held, {"usd": 1.25})  # the provider counted more prompt tokens
    assert book.balance(BUDGET) == pytest.approx(-0.25)
    await book.give_back_idle()  # debts go at the next tick, idle or not
    assert ledger.ledger.out(key(BUDGET, "2026-12-03")) == pytest.approx(1.25)
    with pytest.raises(QuotaExceeded):
        await book.reserve([(BUDGET, 0.01)])


async def test_soft_limit_passed_is_reported_not_refused() -> None:
    book = LeaseBook(LocalLedger(), clock=Clock())
    first = await book.reserve([(SOFT, 0.4)])
    second = await book.reserve([(SOFT, 0.4)])
    assert first.over == () and second.over == (SOFT,)


async def test_one_ask_serves_many_waiting_requests() -> None:
    ledger = CountingLedger()
    ledger.delay_s = 0.01
    book = LeaseBook(ledger, clock=Clock())
    big = Quota("tenant:big", "requests", "minute", 10_000)
    held = await asyncio.gather(*(book.reserve([(big, 1)]) for _ in range(100)))
    assert len(held) == 100
    assert ledger.leases <= 2  # one chunk (5% of the limit) serves the whole burst
    await asyncio.sleep(0.05)
    assert ledger.leases <= 3  # plus, at most, one top-up in the background


async def test_a_refusal_is_remembered_briefly_without_asking_again() -> None:
    clock = Clock()
    ledger = CountingLedger()
    book = LeaseBook(ledger, clock=clock, refusal_ttl_s=1.0)
    await book.reserve([(BUDGET, 1.0)])
    for _ in range(20):
        with pytest.raises(QuotaExceeded):
            await book.reserve([(BUDGET, 0.1)])
    assert ledger.leases == 2  # the grant, then one refusal
    clock.now += 2
    with pytest.raises(QuotaExceeded):
        await book.reserve([(BUDGET, 0.1)])
    assert ledger.leases == 3


async def test_ledger_away_past_the_timeout_refuses_unaccounted_requests() -> None:
    ledger = CountingLedger()
    ledger.failures = 1_000
    book = LeaseBook(ledger, clock=Clock(), ask_timeout_s=0.3)
    with pytest.raises(QuotaUnavailable):
        await book.reserve([(RPM, 1)])


async def test_ledger_restarting_is_waited_for() -> None:
    ledger = CountingLedger()
    ledger.failures = 2
    book = LeaseBook(ledger, clock=Clock(), ask_timeout_s=5)
    assert (await book.reserve([(RPM, 1)])).items


async def test_failed_give_back_keeps_debts_and_drops_returns() -> None:
    clock = Clock()
    ledger = CountingLedger()
    book = LeaseBook(ledger, clock=clock)
    a = await book.reserve([(BUDGET, 0.5)])
    b = await book.reserve([(RPM, 1)])
    book.settle(a, {"usd": 0.6})
    book.release(b)
    clock.now += 10
    ledger.failures = 1
    await book.give_back_idle()
    # The RPM return is dropped (it may have arrived: returning it twice would free spend);
    # the debt is sent again, so spend is never lost.
    await book.give_back_idle()
    assert ledger.ledger.out(key(BUDGET, "2026-12-03")) == pytest.approx(0.6)
    assert ledger.ledger.out(key(RPM, "2026-12-03T07:15")) >= 1


async def test_settled_after_the_window_ends_counts_in_the_window_it_was_reserved() -> None:
    clock = Clock(datetime(2026, 12, 3, 23, 59, 59, tzinfo=UTC).timestamp())
    ledger = LocalLedger()
    book = LeaseBook(ledger, clock=clock)
    held = await book.reserve([(BUDGET, 0.5)])
    clock.now += 2  # midnight passes while the call runs
    book.settle(held, {"usd": 0.4})
    await book.give_back_idle()
    assert ledger.ledger.out(key(BUDGET, "2026-12-03")) == pytest.approx(0.4)
    assert (await book.reserve([(BUDGET, 1.0)])).items  # the new day starts from zero
    assert ledger.ledger.out(key(BUDGET, "2026-12-04")) == pytest.approx(1.0)


async def test_aclose_gives_everything_back() -> None:
    ledger = LocalLedger()
    book = LeaseBook(ledger, clock=Clock())
    big = Quota("tenant:big", "tokens", "minute", 1_000_000)
    held = await book.reserve([(big, 100)])
    book.settle(held, {"tokens": 80})
    await book.aclose()
    assert ledger.ledger.out(key(big, "2026-12-03T07:15")) == pytest.approx(80)


@pytest.mark.parametrize("quota", [BUDGET, RPM])
async def test_two_replicas_admit_exactly_the_limit(quota: Quota) -> None:
    """50 concurrent requests over two replicas against a limit that affords 5."""
    shared = QuotaLedger()
    books = [LeaseBook(CountingLedger(shared), clock=Clock()) for _ in range(2)]
    for book in books:
        book.ledger.delay_s = 0.002  # type: ignore[attr-defined]
    limit = Quota(
        quota.subject, quota.metric, quota.period, 5 * 0.013 if quota.metric == "usd" else 5
    )
    need = 0.013 if quota.metric == "usd" else 1

    async def call(i: int) -> bool:
        book = books[i % 2]
        try:
            held = await book.reserve([(limit, need)])
        except QuotaExceeded:
            return False
        await asyncio.sleep(0.01)
        book.settle(held, {quota.metric: need})
        return True

    admitted = sum(await asyncio.gather(*(call(i) for i in range(50))))
    assert admitted == 5  # exact costs: nothing stranded in fragments, nothing past the limit
    for book in books:
        await book.aclose()
    window = "2026-12-03" if quota.period == "day" else "2026-12-03T07:15"
    assert shared.out(key(limit, window)) == pytest.approx(5 * need)
