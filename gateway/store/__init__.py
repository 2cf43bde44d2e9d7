"""The gateway's database (SQLite by default, PostgreSQL for clusters) and its record types."""

from gateway.store.records import ApiKey, AuditEvent, UsageRecord, UsageSummary, utcnow
from gateway.store.store import RegistryState, StaleRegistryError, Store

__all__ = [
    "ApiKey",
    "AuditEvent",
    "RegistryState",
    "StaleRegistryError",
    "Store",
    "UsageRecord",
    "UsageSummary",
    "utcnow",
]
