"""The store's usage and audit tables: idempotent batch writes and the reports read from them.

Writes are at least once upstream (a replica's batch may be sent twice, a spool replayed after
a crash), so they are idempotent here: usage by its unique `request_id`, audit by the request
id its event carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import case, func, insert, select
from sqlalchemy.sql.elements import ColumnElement

from gateway.store.engine import upsert_statement
from gateway.store.schema import AuditRow, UsageRow
from gateway.usage.records import AuditEvent, UsageRecord, UsageSummary, as_row

GroupBy = Literal["tenant", "model", "provider", "upstream", "key_id", "status"]
# What a usage report groups by, as the CLI and `GET /admin/usage` name it.
ReportBy = Literal["tenant", "key", "model", "provider", "day"]
REPORT_BY: tuple[ReportBy, ...] = ("tenant", "key", "model", "provider", "day")


class UsageTables:
    """Usage and audit; mixed into `Store`, which supplies the transactions."""

    _reading: Any
    _writing: Any

    # ------------------------------------------------------------------ writing

    def write_usage(self, records: Sequence[UsageRecord]) -> int:
        """Insert usage records in one transaction, skipping request ids already stored (a
        batch written twice bills once); returns how many rows were new."""
        if not records:
            return 0
        with self._writing() as conn:
            statement = (
                upsert_statement(conn, UsageRow.__table__)
                .on_conflict_do_nothing(index_elements=["request_id"])
                .returning(UsageRow.id)
            )
            # RETURNING counts the new rows exactly; executemany rowcounts vary by driver.
            return len(conn.execute(statement, [as_row(r) for r in records]).all())

    def write_audit(self, events: Sequence[AuditEvent]) -> int:
        """Insert audit events in one transaction, skipping those whose request id already has
        an event (a replayed batch); returns how many were new."""
        if not events:
            return 0
        with self._writing() as conn:
            ids = {e.request_id for e in events if e.request_id is not None}
            stored = set()
            if ids:
                stored = set(
                    conn.execute(
                        select(AuditRow.request_id).where(AuditRow.request_id.in_(ids))
                    ).scalars()
                )
            fresh, seen = [], set()
            for event in events:
                rid = event.request_id
                if rid is not None and (rid in stored or rid in seen):
                    continue
                if rid is not None:
                    seen.add(rid)
                fresh.append(as_row(event))
            if fresh:
                conn.execute(insert(AuditRow), fresh)
        return len(fresh)

    # ------------------------------------------------------------------ reading

    def usage_summary(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant: str | None = None,
        model: str | None = None,
        key_id: str | None = None,
        group_by: Sequence[GroupBy] = ("tenant", "model"),
    ) -> list[UsageSummary]:
        """Totals of usage in [since, until), filtered and grouped by the named columns."""
        groups = [getattr(UsageRow, column) for column in group_by]
        rows = self._totals(groups, _usage_filters(since, until, tenant, model, key_id))
        n = len(groups)
        return [
            UsageSummary(
                group=dict(zip(group_by, row[:n], strict=True)),
                requests=int(row[n]),
                errors=int(row[n + 1]),
                prompt_tokens=int(row[n + 2]),
                completion_tokens=int(row[n + 3]),
                cached_tokens=int(row[n + 4]),
                cost_usd=float(row[n + 5]),
                avg_latency_ms=None if row[n + 6] is None else float(row[n + 6]),
            )
            for row in rows
        ]

    def usage_report(
        self,
        *,
        by: Sequence[ReportBy] = ("tenant", "model"),
        tenant: str | None = None,
        key_id: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Usage in [since, until) grouped by `by` (tenant, key, model, provider, day (UTC)):
        one plain dict per group with its keys, requests, errors, tokens, cost and latency."""
        unknown = [b for b in by if b not in REPORT_BY]
        if unknown:
            raise ValueError(f"cannot group usage by {unknown[0]!r}: one of {', '.join(REPORT_BY)}")
        with self._reading() as conn:
            dialect = conn.dialect.name
        groups = [_report_column(b, dialect) for b in by]
        rows = self._totals(groups, _usage_filters(since, until, tenant, model, key_id))
        n = len(groups)
        report = []
        for row in rows:
            prompt, completion = int(row[n + 2]), int(row[n + 3])
            entry: dict[str, Any] = {
                ("key_id" if b == "key" else b): row[i] for i, b in enumerate(by)
            }
            entry |= {
                "requests": int(row[n]),
                "errors": int(row[n + 1]),
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "cached_tokens": int(row[n + 4]),
                "total_tokens": prompt + completion,
                "cost_usd": round(float(row[n + 5]), 10),
                "avg_latency_ms": None if row[n + 6] is None else round(float(row[n + 6]), 2),
            }
            report.append(entry)
        return report

    def list_usage(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant: str | None = None,
        model: str | None = None,
        key_id: str | None = None,
        limit: int | None = 100,
    ) -> list[UsageRecord]:
        """The newest usage records, newest first (all of them with `limit=None`)."""
        columns = [c for c in UsageRow.__table__.columns if c.name != "id"]
        query = (
            select(*columns)
            .where(*_usage_filters(since, until, tenant, model, key_id))
            .order_by(UsageRow.at.desc(), UsageRow.id.desc())
        )
        if limit is not None:
            query = query.limit(limit)
        with self._reading() as conn:
            return [UsageRecord(**row._asdict()) for row in conn.execute(query)]

    def list_audit(
        self,
        *,
        tenant: str | None = None,
        since: datetime | None = None,
        action: str | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """The newest audit events, newest first."""
        columns = [c for c in AuditRow.__table__.columns if c.name != "id"]
        query = select(*columns).order_by(AuditRow.at.desc(), AuditRow.id.desc()).limit(limit)
        if tenant is not None:
            query = query.where(AuditRow.tenant == tenant)
        if since is not None:
            query = query.where(AuditRow.at >= since)
        if action is not None:
            query = query.where(AuditRow.action == action)
        with self._reading() as conn:
            return [AuditEvent(**row._asdict()) for row in conn.execute(query)]

    # ------------------------------------------------------------------ internals

    def _totals(self, groups: list[Any], filters: list[Any]) -> list[Any]:
        query = select(
            *groups,
            func.count(),
            func.coalesce(func.sum(case((UsageRow.status >= 400, 1), else_=0)), 0),
            func.coalesce(func.sum(UsageRow.prompt_tokens), 0),
            func.coalesce(func.sum(UsageRow.completion_tokens), 0),
            func.coalesce(func.sum(UsageRow.cached_tokens), 0),
            func.coalesce(func.sum(UsageRow.cost_usd), 0.0),
            func.avg(UsageRow.latency_ms),
        ).where(*filters)
        if groups:
            query = query.group_by(*groups).order_by(*groups)
        with self._reading() as conn:
            return list(conn.execute(query).all())


def _report_column(by: ReportBy, dialect: str) -> ColumnElement[Any]:
    if by == "key":
        return UsageRow.key_id
    if by != "day":
        return getattr(UsageRow, by)
    if dialect == "postgresql":
        # The session's time zone may be anything; days are UTC days.
        return func.to_char(func.timezone("UTC", UsageRow.at), "YYYY-MM-DD").label("day")
    # SQLite keeps UTC timestamps as ISO text.
    return func.substr(UsageRow.at, 1, 10).label("day")


def _usage_filters(
    since: datetime | None,
    until: datetime | None,
    tenant: str | None,
    model: str | None,
    key_id: str | None,
) -> list[Any]:
    filters: list[Any] = []
    if since is not None:
        filters.append(UsageRow.at >= since)
    if until is not None:
        filters.append(UsageRow.at < until)
    if tenant is not None:
        filters.append(UsageRow.tenant == tenant)
    if model is not None:
        filters.append(UsageRow.model == model)
    if key_id is not None:
        filters.append(UsageRow.key_id == key_id)
    return filters
