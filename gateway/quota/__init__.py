"""Limits and budgets that hold across replicas: windows, the lease ledger, replica balances."""

from gateway.quota.leases import LeaseBook, QuotaExceeded, QuotaUnavailable, Reservation
from gateway.quota.ledger import Ask, GiveBack, Grant, LedgerKey, LocalLedger, QuotaLedger
from gateway.quota.windows import Window, WindowClock, window_at

__all__ = [
    "Ask",
    "GiveBack",
    "Grant",
    "LeaseBook",
    "LedgerKey",
    "LocalLedger",
    "QuotaExceeded",
    "QuotaLedger",
    "QuotaUnavailable",
    "Reservation",
    "Window",
    "WindowClock",
    "window_at",
]
