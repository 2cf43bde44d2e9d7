"""The store's quota ledger: what the quota actor has leased out and had back, per window.

Changes are added, never overwritten (`granted = granted + delta`), so a row is right however
many ledgers wrote to it, and a restarted actor reloads exactly what was handed out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, tuple_

from gateway.quota.ledger import LedgerKey
from gateway.store.engine import upsert_statement
from gateway.store.schema import QuotaLedgerRow
from gateway.usage.records import utcnow

_T = QuotaLedgerRow.__table__


class LedgerTables:
    """Quota ledger rows; mixed into `Store`, which supplies the transactions. Also the
    `LedgerBackend` a `QuotaLedger` persists through."""

    _reading: Any
    _writing: Any

    def ledger_rows(self, keys: Sequence[LedgerKey]) -> dict[LedgerKey, tuple[float, float]]:
        """(granted, returned) of each key that has a row."""
        if not keys:
            return {}
        found: dict[LedgerKey, tuple[float, float]] = {}
        with self._reading() as conn:
            # Small batches: a tuple IN list is portable, and a request names a few quotas.
            for start in range(0, len(keys), 200):
                chunk = [tuple(k) for k in keys[start : start + 200]]
                rows = conn.execute(
                    select(
                        _T.c.subject, _T.c.metric, _T.c.window, _T.c.granted, _T.c.returned
                    ).where(tuple_(_T.c.subject, _T.c.metric, _T.c.window).in_(chunk))
                )
                for subject, metric, window, granted, returned in rows:
                    found[LedgerKey(subject, metric, window)] = (granted, returned)
        return found

    def ledger_add(self, changes: Sequence[tuple[LedgerKey, float, float]]) -> None:
        """Add (granted, returned) deltas to each key's row, creating missing rows, in one
        transaction."""
        summed: dict[LedgerKey, tuple[float, float]] = {}
        for key, granted, returned in changes:
            g, r = summed.get(key, (0.0, 0.0))
            summed[key] = (g + granted, r + returned)
        if not summed:
            return
        now = utcnow()
        rows = [
            {
                "subject": k.subject,
                "metric": k.metric,
                "window": k.window,
                "granted": g,
                "returned": r,
                "updated_at": now,
            }
            for k, (g, r) in summed.items()
        ]
        with self._writing() as conn:
            statement = upsert_statement(conn, _T)
            statement = statement.on_conflict_do_update(
                index_elements=[_T.c.subject, _T.c.metric, _T.c.window],
                set_={
                    "granted": _T.c.granted + statement.excluded.granted,
                    "returned": _T.c.returned + statement.excluded.returned,
                    "updated_at": statement.excluded.updated_at,
                },
            )
            conn.execute(statement, rows)

    def ledger_out(self, subject: str, metric: str, window: str) -> float:
        """What is out for one subject, metric and window: spent plus leases held."""
        return sum(
            g - r for g, r in self.ledger_rows([LedgerKey(subject, metric, window)]).values()
        )
