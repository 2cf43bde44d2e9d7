"""What is recorded about calls: plain dataclasses the pipeline builds and the store keeps.

They live outside `gateway.store` so that the steps that meter and audit every request do not
import SQLAlchemy and Alembic into each ingress. Timestamps are timezone-aware UTC datetimes;
the store hands them back the same way from SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    """Now, as an aware UTC datetime (the only kind the store accepts and returns)."""
    return datetime.now(UTC)


@dataclass(kw_only=True)
class UsageRecord:
    """One call's usage and outcome, as metered by the ingress: a row of `usage`."""

    request_id: str
    at: datetime = field(default_factory=utcnow)
    key_id: str | None = None
    tenant: str | None = None
    model: str | None = None
    provider: str | None = None
    upstream: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    status: int = 200
    error_code: str | None = None
    stream: bool = False
    endpoint: str | None = None
    use_case: str | None = None
    strategy: str | None = None
    attempts: int = 0
    fallbacks: int = 0
    provider_ms: float | None = None
    overhead_ms: float | None = None
    flags: list[str] | None = None  # e.g. "budget_exceeded:tenant:acme:day" for soft budgets


@dataclass(kw_only=True)
class AuditEvent:
    """One audited action (a call, an admin change, a refused key): a row of `audit`."""

    request_id: str | None = None
    at: datetime = field(default_factory=utcnow)
    key_id: str | None = None
    tenant: str | None = None
    action: str
    path: str | None = None
    status: int | None = None
    model: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class UsageSummary:
    """Usage totals over a time range for one group (the `group` values, keyed by column)."""

    group: dict[str, Any]
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float
    avg_latency_ms: float | None


_COLUMNS = {cls: tuple(f.name for f in fields(cls)) for cls in (UsageRecord, AuditEvent)}


def as_row(record: UsageRecord | AuditEvent) -> dict[str, Any]:
    """A record's fields as a dict, values shared, not copied: `dataclasses.asdict` deep-copies
    every value, which was a third of the usage writer's CPU (bench/profile_hot.py)."""
    return {name: getattr(record, name) for name in _COLUMNS[type(record)]}
