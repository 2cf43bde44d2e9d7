"""Registry tests run on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store import Store
from tests.pg import database_url, pg_database  # noqa: F401 - a fixture


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty store: a SQLite file or a fresh PostgreSQL schema."""
    for url in database_url(request, tmp_path):
        store = Store(url)
        store.migrate()
        yield store
        store.close()
