"""Alembic's entry point: `Store.migrate()` hands it an open connection in `attributes`."""

from __future__ import annotations

from alembic import context

from gateway.store.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through gateway.store.Store(url).migrate()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
