"""Store fixtures: every store test runs on SQLite and on PostgreSQL (see tests/pg.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store import Store
from tests.pg import database_url, pg_database  # noqa: F401 - a fixture


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    yield from database_url(request, tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated, empty store."""
    store = Store(store_url)
    store.migrate()
    yield store
    store.close()
