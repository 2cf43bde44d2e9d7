"""Usage reports for people and notebooks: the same grouped totals `llmgw usage` and
`GET /admin/usage` show, as rows or as a pandas DataFrame."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from gateway.store import AuditEvent, Store
from gateway.store.usage import REPORT_BY, ReportBy

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_BY: tuple[ReportBy, ...] = ("tenant", "model")
# The columns of a report row after its group's own.
TOTALS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "total_tokens",
    "cost_usd",
    "avg_latency_ms",
)


def parse_by(value: str | Sequence[str] | None) -> tuple[ReportBy, ...]:
    """`"tenant,model"` or `["tenant", "day"]` -> the grouping; ValueError naming the bad one."""
    if value is None or value == "" or value == []:
        return DEFAULT_BY
    parts = value.split(",") if isinstance(value, str) else [p for v in value for p in v.split(",")]
    by: list[ReportBy] = []
    for part in (p.strip() for p in parts):
        if part == "key_id":
            part = "key"
        if part not in REPORT_BY:
            raise ValueError(f"cannot group usage by '{part}': one of {', '.join(REPORT_BY)}")
        if part not in by:
            by.append(part)  # type: ignore[arg-type]
    return tuple(by)


def parse_time(value: str | None, name: str) -> datetime | None:
    """An ISO date or date-time; naive ones are UTC. ValueError naming the parameter."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"'{name}' must be an ISO date or date-time (2026-12-01 or 2026-12-01T09:00Z),"
            f" not '{value}'"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def usage_frame(
    store: Store | str,
    *,
    by: str | Sequence[str] | None = DEFAULT_BY,
    tenant: str | None = None,
    key_id: str | None = None,
    model: str | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
) -> pd.DataFrame:
    """Usage totals grouped `by` (tenant, key, model, provider, day) as a DataFrame, one row a
    group; `by=()` gives the raw usage records instead, newest first. `store` is a `Store` or
    its URL."""
    import pandas as pd

    owned = isinstance(store, str)
    db = Store(store) if isinstance(store, str) else store
    try:
        start = parse_time(since, "since") if isinstance(since, str) else since
        end = parse_time(until, "until") if isinstance(until, str) else until
        if by is not None and len(by) == 0:
            records = db.list_usage(
                since=start, until=end, tenant=tenant, key_id=key_id, model=model, limit=None
            )
            return pd.DataFrame([vars(r) for r in records])
        grouping = parse_by(by)
        rows: list[dict[str, Any]] = db.usage_report(
            by=grouping, tenant=tenant, key_id=key_id, model=model, since=start, until=end
        )
        columns = [("key_id" if b == "key" else b) for b in grouping] + list(TOTALS)
        return pd.DataFrame(rows, columns=columns)
    finally:
        if owned:
            db.close()


class UsageReader(Protocol):
    """Where `/admin/usage` and `/admin/audit` read from."""

    async def report(self, **filters: Any) -> list[dict[str, Any]]: ...

    async def audit(self, **filters: Any) -> list[AuditEvent]: ...


class StoreUsageReader:
    """Reports read from the store by URL (opened on first use), off the event loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: Store | None = None

    def _opened(self) -> Store:
        if self._store is None:
            store = Store(self.url)
            # A store nobody has written to yet (an in-process gateway) reads as empty, not 500.
            store.migrate()
            self._store = store
        return self._store

    async def report(self, **filters: Any) -> list[dict[str, Any]]:
        return await asyncio.to_thread(lambda: self._opened().usage_report(**filters))

    async def audit(self, **filters: Any) -> list[AuditEvent]:
        return await asyncio.to_thread(lambda: self._opened().list_audit(**filters))
