"""Where each registry entry came from (the config file or the admin API).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    for table in ("models", "providers"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("origin", Json, nullable=True))


def downgrade() -> None:
    for table in ("models", "providers"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("origin")
