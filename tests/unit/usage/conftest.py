"""Usage fixtures: the writer's store tests run on SQLite and on PostgreSQL, like the store's."""

from tests.pg import pg_database  # noqa: F401 - a fixture
from tests.unit.store.conftest import store, store_url  # noqa: F401 - fixtures
