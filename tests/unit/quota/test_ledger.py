"""The quota ledger: grant sizes, hard limits never leased past, soft limits flagged."""

from __future__ import annotations

import random

import pytest

from gateway.quota.ledger import Ask, GiveBack, LedgerKey, MemoryBackend, QuotaLedger

KEY = LedgerKey("tenant:acme", "requests", "2026-12-03T07:15")


def test_grants_shrink_as_the_limit_nears() -> None:
    ledger = QuotaLedger(chunk_share=0.05, remaining_share=0.25)
    sizes = []
    while not (grant := ledger.lease([Ask(KEY, 10_000, True, 1)])[0]).refused:
        sizes.append(grant.amount)
        if grant.remaining <= 0:
            break
    assert sizes[0] == 500  # 5% of the limit
    assert sizes == sorted(sizes, reverse=True)  # never growing
    assert sizes[-1] == 1  # at the end, only what is needed
    assert 10_000 - 1 < sum(sizes) <= 10_000  # refused only once less than one remains


def test_hard_limit_refuses_a_need_above_what_remains() -> None:
    ledger = QuotaLedger()
    assert ledger.lease([Ask(KEY, 10, True, 8)])[0].amount == 8
    refused = ledger.lease([Ask(KEY, 10, True, 3)])[0]
    assert refused.refused and refused.amount == 0 and refused.remaining == pytest.approx(2)
    assert ledger.lease([Ask(KEY, 10, True, 2)])[0].amount == pytest.approx(2)


def test_an_exact_dollar_limit_affords_exactly_its_calls() -> None:
    ledger = QuotaLedger()
    key = LedgerKey("tenant:acme", "usd", "2026-12-03")
    cost = 0.1 * 3 / 1e6 + 0.7 * 29 / 1e6  # float dust in every product
    granted = [ledger.lease([Ask(key, cost * 5, True, cost)])[0] for _ in range(6)]
    assert [g.refused for g in granted] == [False] * 5 + [True]


def test_soft_limit_grants_anyway_and_says_it_is_over() -> None:
    ledger = QuotaLedger()
    key = LedgerKey("key:k1", "usd", "2026-12")
    first = ledger.lease([Ask(key, 1.0, False, 0.8)])[0]
    assert first.amount >= 0.8 and not first.over
    second = ledger.lease([Ask(key, 1.0, False, 0.5)])[0]
    assert second.amount == pytest.approx(0.5) and second.over and not second.refused


def test_give_back_frees_room_and_debt_is_recorded() -> None:
    ledger = QuotaLedger()
    ledger.lease([Ask(KEY, 10, True, 10)])
    assert ledger.lease([Ask(KEY, 10, True, 1)])[0].refused
    ledger.give_back([GiveBack(KEY, 4)])
    assert ledger.out(KEY) == pytest.approx(6)
    ledger.give_back([GiveBack(KEY, -1.5)])  # spent beyond a grant
    assert ledger.out(KEY) == pytest.approx(7.5)


def test_many_replicas_racing_never_lease_past_a_hard_limit() -> None:
    """Simulated replicas ask, spend, give back and go into debt at random; what is out never
    passes the limit but by the debts reported."""
    rng = random.Random(7)
    backend = MemoryBackend()
    ledger = QuotaLedger(backend)
    limit = 1_000.0
    held = [0.0] * 8
    debt = 0.0
    for _ in range(5_000):
        replica = rng.randrange(8)
        action = rng.random()
        if action < 0.6:
            grant = ledger.lease([Ask(KEY, limit, True, rng.uniform(0, 30))])[0]
            held[replica] += grant.amount
        elif action < 0.9 and held[replica] > 0:
            back = rng.uniform(0, held[replica])
            held[replica] -= back
            ledger.give_back([GiveBack(KEY, back)])
        elif action >= 0.99:
            extra = rng.uniform(0, 2)
            debt += extra
            ledger.give_back([GiveBack(KEY, -extra)])
        assert ledger.out(KEY) <= limit + debt + 1e-6
    granted, returned = backend.rows[KEY]
    assert granted - returned == pytest.approx(ledger.out(KEY))


def test_a_restarted_ledger_resumes_from_its_backend() -> None:
    backend = MemoryBackend()
    QuotaLedger(backend).lease([Ask(KEY, 10, True, 9)])
    again = QuotaLedger(backend)
    assert again.lease([Ask(KEY, 10, True, 2)])[0].refused
    assert again.lease([Ask(KEY, 10, True, 1)])[0].amount == 1
