"""The gateway's database (SQLite by default, PostgreSQL for clusters) and the records it keeps."""

from gateway.store.access import ApiKey
from gateway.store.store import RegistryState, StaleRegistryError, Store
from gateway.usage.records import AuditEvent, UsageRecord, UsageSummary, utcnow

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
