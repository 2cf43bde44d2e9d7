"""PostgreSQL for tests: 127.0.0.1:5432, trust auth; a private database per test run and a
private schema per test, dropped afterwards, so concurrent runs never see each other's rows.

Import `pg_database` into a conftest to use it; `pg_schema` gives one test an empty schema.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

_USERS = ("root", "postgres")


def _admin_url() -> URL | None:
    for user in _USERS:
        url = make_url(f"postgresql+psycopg://{user}@127.0.0.1:5432/test")
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return url
        except Exception:
            continue
        finally:
            engine.dispose()
    return None


def _start_postgres() -> None:
    clusters = Path("/etc/postgresql")
    if not shutil.which("pg_ctlcluster") or not clusters.is_dir():
        return
    for version in sorted(p.name for p in clusters.iterdir()):
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            capture_output=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="session")
def pg_database() -> Iterator[URL]:
    """A private PostgreSQL database for this test run, dropped at the end."""
    admin = _admin_url()
    if admin is None:
        _start_postgres()
        admin = _admin_url()
    if admin is None:
        pytest.skip(
            "PostgreSQL IS NOT AVAILABLE on 127.0.0.1:5432 (users root/postgres, database test)"
            " and could not be started: the PostgreSQL half of these tests did not run"
        )
    name = f"llmgw_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@contextmanager
def pg_schema(database: URL) -> Iterator[str]:
    """A URL whose connections see only a fresh, empty schema of `database`."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(database, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = database.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """For a fixture parametrised over "sqlite" and "postgresql": an empty database's URL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'llmgw.db'}"
        return
    with pg_schema(request.getfixturevalue("pg_database")) as url:
        yield url
