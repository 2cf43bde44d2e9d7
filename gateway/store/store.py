"""The gateway's database: registry state, API keys, usage and audit, over SQLAlchemy.

A SQLite file by default (WAL mode, so the registry actor and the usage writer can share it
from two processes), PostgreSQL for clusters. The schema is Alembic's, applied by `migrate()`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

from alembic import command
from alembic.config import Config as AlembicConfig
from pydantic import ValidationError
from sqlalchemy import (
    Connection,
    Table,
    delete,
    select,
    text,
)
from sqlalchemy.engine import URL

from gateway.config import ModelConfig, ProviderConfig
from gateway.store.access import AccessTables
from gateway.store.engine import WRITE_OPTION, create_engine, normalize_url, upsert_statement
from gateway.store.ledger import LedgerTables
from gateway.store.responses import ResponseTables
from gateway.store.schema import ModelRow, ProviderRow, RegistryMetaRow
from gateway.store.usage import UsageTables
from gateway.usage.records import utcnow

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every process migrating one database.
_PG_MIGRATION_LOCK = 0x6C6C6D6777  # "llmgw"


class RegistryState(NamedTuple):
    """What `load_registry` returns: the registry as last saved."""

    version: int
    providers: list[ProviderConfig]
    models: list[ModelConfig]
    config_hash: str | None
    origins: dict[tuple[str, str], dict[str, Any]] = {}
    config_path: str | None = None


class StaleRegistryError(RuntimeError):
    """The stored registry version is already at or past the one being saved.

    Two registries writing to one store would otherwise silently overwrite each other.
    """


class Store(AccessTables, UsageTables, LedgerTables, ResponseTables):
    """One database, SQLite or PostgreSQL, by SQLAlchemy URL; safe to share between processes."""

    def __init__(self, url: str | URL) -> None:
        self.url = normalize_url(url)
        self._engine = create_engine(self.url)

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def __repr__(self) -> str:
        return f"Store({self.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def migrate(self) -> None:
        """Bring the schema to the newest revision; safe when several processes start at once."""
        alembic = AlembicConfig()
        alembic.set_main_option("script_location", "gateway.store:migrations")
        with self._writing() as conn:
            if self.dialect == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            alembic.attributes["connection"] = conn
            command.upgrade(alembic, "head")

    # ------------------------------------------------------------------ registry

    def load_registry(self) -> RegistryState:
        """The saved registry; rows that no longer validate are logged and left out."""
        with self._reading() as conn:
            meta = dict(conn.execute(select(RegistryMetaRow.key, RegistryMetaRow.value)).all())
            provider_rows = conn.execute(
                select(ProviderRow.name, ProviderRow.config, ProviderRow.origin).order_by(
                    ProviderRow.name
                )
            ).all()
            model_rows = conn.execute(
                select(ModelRow.name, ModelRow.config, ModelRow.origin).order_by(ModelRow.name)
            ).all()
        providers = [
            p
            for name, data, _ in provider_rows
            if (p := _load(ProviderConfig, "providers", name, data))
        ]
        models = [
            m for name, data, _ in model_rows if (m := _load(ModelConfig, "models", name, data))
        ]
        origins = {("provider", name): o for name, _, o in provider_rows if o} | {
            ("model", name): o for name, _, o in model_rows if o
        }
        return RegistryState(
            version=int(meta.get("version", 0)),
            providers=providers,
            models=models,
            config_hash=meta.get("config_hash"),
            origins=origins,
            config_path=meta.get("config_path"),
        )

    def save_registry_change(
        self,
        version: int,
        *,
        providers: Iterable[ProviderConfig] = (),
        models: Iterable[ModelConfig] = (),
        delete_models: Iterable[str] = (),
        delete_providers: Iterable[str] = (),
        config_hash: str | None = None,
        config_path: str | None = None,
        origins: Mapping[tuple[str, str], dict[str, Any] | None] | None = None,
    ) -> None:
        """Upsert and delete providers and models (with where each came from, by
        `(kind, name)` in `origins`) and record `version`, in one transaction."""
        now = utcnow()
        origins = origins or {}
        provider_rows = [
            {
                "name": p.name,
                "config": p.model_dump(mode="json"),
                "origin": origins.get(("provider", p.name)),
            }
            for p in providers
        ]
        model_rows = [
            {
                "name": m.name,
                "config": m.model_dump(mode="json"),
                "updated_at": now,
                "origin": origins.get(("model", m.name)),
            }
            for m in models
        ]
        with self._writing() as conn:
            stored = conn.execute(
                select(RegistryMetaRow.value)
                .where(RegistryMetaRow.key == "version")
                .with_for_update()
            ).scalar()
            if stored is not None and int(stored) >= version:
                raise StaleRegistryError(
                    f"the store already holds registry version {stored}, cannot save {version}"
                    " (is another registry writing to the same store?)"
                )
            _upsert(conn, ProviderRow.__table__, provider_rows, "name")
            _upsert(conn, ModelRow.__table__, model_rows, "name")
            if names := list(delete_models):
                conn.execute(delete(ModelRow).where(ModelRow.name.in_(names)))
            if names := list(delete_providers):
                conn.execute(delete(ProviderRow).where(ProviderRow.name.in_(names)))
            meta = [{"key": "version", "value": str(version)}]
            if config_hash is not None:
                meta.append({"key": "config_hash", "value": config_hash})
                meta.append({"key": "config_path", "value": config_path or ""})
            _upsert(conn, RegistryMetaRow.__table__, meta, "key")

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        # On SQLite the write lock is taken at BEGIN (IMMEDIATE), so the busy timeout applies;
        # a deferred BEGIN that later upgrades to a write can fail at once with "locked".
        with self._engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn


def _upsert(conn: Connection, table: Table, rows: list[dict[str, Any]], key: str) -> None:
    if not rows:
        return
    statement = upsert_statement(conn, table)
    statement = statement.on_conflict_do_update(
        index_elements=[key],
        set_={column: statement.excluded[column] for column in rows[0] if column != key},
    )
    conn.execute(statement, rows)


def _load(kind: type[Any], table: str, name: str, data: Any) -> Any:
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        log.error("store: %s row '%s' no longer validates and is ignored: %s", table, name, exc)
        return None
