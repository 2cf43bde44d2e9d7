"""Tenants, key expiry/limits/last use, the quota ledger, and richer, deduplicated usage.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("spec", Json, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
    )
    op.create_table(
        "quota_ledger",
        sa.Column("subject", sa.String(300), primary_key=True),
        sa.Column("metric", sa.String(16), primary_key=True),
        sa.Column("window", sa.String(32), primary_key=True),
        sa.Column("granted", sa.Float(), nullable=False),
        sa.Column("returned", sa.Float(), nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
    )
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", Timestamp, nullable=True))
        batch.add_column(sa.Column("limits", Json, nullable=True))
        batch.add_column(sa.Column("last_used_at", Timestamp, nullable=True))
    # At-least-once delivery may have written a record twice before request ids were unique.
    op.execute(
        "DELETE FROM usage WHERE id NOT IN (SELECT keep FROM "
        "(SELECT MIN(id) AS keep FROM usage GROUP BY request_id) AS firsts)"
    )
    op.drop_index("ix_usage_request_id", table_name="usage")
    op.create_index("ux_usage_request_id", "usage", ["request_id"], unique=True)
    op.create_index("ix_usage_key_at", "usage", ["key_id", "at"])
    with op.batch_alter_table("usage") as batch:
        batch.add_column(sa.Column("endpoint", sa.String(32), nullable=True))
        batch.add_column(sa.Column("use_case", sa.String(32), nullable=True))
        batch.add_column(sa.Column("strategy", sa.String(32), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("fallbacks", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("provider_ms", sa.Float(), nullable=True))
        batch.add_column(sa.Column("overhead_ms", sa.Float(), nullable=True))
        batch.add_column(sa.Column("flags", Json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage") as batch:
        for column in (
            "flags",
            "overhead_ms",
            "provider_ms",
            "fallbacks",
            "attempts",
            "strategy",
            "use_case",
            "endpoint",
        ):
            batch.drop_column(column)
    op.drop_index("ix_usage_key_at", table_name="usage")
    op.drop_index("ux_usage_request_id", table_name="usage")
    op.create_index("ix_usage_request_id", "usage", ["request_id"])
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("limits")
        batch.drop_column("expires_at")
    op.drop_table("quota_ledger")
    op.drop_table("tenants")
