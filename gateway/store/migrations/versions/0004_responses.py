"""Responses kept for `previous_response_id` and `GET /v1/responses/{id}`, per tenant.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("previous_response_id", sa.String(64), nullable=True),
        sa.Column("response", Json, nullable=False),
        sa.Column("input_items", Json, nullable=False),
        sa.Column("context_items", Json, nullable=False),
    )
    op.create_index("ix_responses_tenant_created", "responses", ["tenant", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_responses_tenant_created", table_name="responses")
    op.drop_table("responses")
