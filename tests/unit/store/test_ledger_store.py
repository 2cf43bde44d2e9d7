"""The quota ledger persisted in the store (SQLite and PostgreSQL): a restarted ledger
resumes where the last one stopped, and rows only ever add up."""

from __future__ import annotations

from gateway.quota.ledger import Ask, GiveBack, LedgerKey, QuotaLedger
from gateway.store import Store

KEY = LedgerKey("tenant:acme", "usd", "2026-12-03")


def test_rows_add_up(store: Store) -> None:
    store.ledger_add([(KEY, 1.0, 0.0), (KEY, 0.5, 0.25)])
    store.ledger_add([(KEY, 0.0, 0.25)])
    assert store.ledger_rows([KEY, KEY._replace(window="2026-12-04")]) == {KEY: (1.5, 0.5)}
    assert store.ledger_out(*KEY) == 1.0


def test_a_restarted_ledger_resumes_from_the_store(store_url: str) -> None:
    first = Store(store_url)
    first.migrate()
    ledger = QuotaLedger(first)
    assert ledger.lease([Ask(KEY, 1.0, True, 0.7)])[0].amount >= 0.7
    ledger.give_back([GiveBack(KEY, ledger.out(KEY) - 0.7), GiveBack(KEY, -0.05)])
    first.close()

    # A new process (the actor restarted): nothing granted before may be granted again.
    second = Store(store_url)
    restarted = QuotaLedger(second)
    assert restarted.out(KEY) == 0.75
    assert restarted.lease([Ask(KEY, 1.0, True, 0.3)])[0].refused
    assert restarted.lease([Ask(KEY, 1.0, True, 0.25)])[0].amount == 0.25
    second.close()


def test_two_ledgers_on_one_store_keep_every_change(store_url: str) -> None:
    stores = [Store(store_url) for _ in range(2)]
    stores[0].migrate()
    granted = 0.0
    for i in range(40):
        granted += QuotaLedger(stores[i % 2]).lease([Ask(KEY, 10.0, True, 0.5)])[0].amount
    assert stores[1].ledger_out(*KEY) == granted
    assert 9.5 < granted <= 10.0  # each ledger loaded what the other had granted
    for store in stores:
        store.close()
