"""The store on SQLite and PostgreSQL: schema, registry state, usage, audit and API keys."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from gateway.config import ModelConfig, Price, ProviderConfig
from gateway.errors import ConflictError
from gateway.store import AuditEvent, StaleRegistryError, Store, UsageRecord
from gateway.store.schema import Base

ROOT = Path(__file__).resolve().parents[3]
SIM = ProviderConfig(name="sim", type="sim")


def model(name: str, **fields: object) -> ModelConfig:
    return ModelConfig(name=name, provider="sim", **fields)


# ---------------------------------------------------------------- schema


def test_migrate_creates_every_table_and_is_idempotent(store: Store) -> None:
    store.migrate()  # a second start changes nothing
    engine = create_engine(store.url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"providers", "models", "registry_meta", "api_keys", "usage", "audit"} <= tables
        assert "alembic_version" in tables
        indexes = {i["name"] for i in inspect(engine).get_indexes("usage")}
        assert {"ix_usage_tenant_at", "ix_usage_model_at"} <= indexes
    finally:
        engine.dispose()


def test_migration_matches_the_orm_tables(store: Store) -> None:
    engine = create_engine(store.url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_migrations_ship_as_package_data() -> None:
    from importlib import resources

    migrations = resources.files("gateway.store").joinpath("migrations")
    assert migrations.joinpath("env.py").is_file()
    assert migrations.joinpath("versions", "0001_initial.py").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "store/migrations/versions/*.py" in pyproject


# ---------------------------------------------------------------- registry state


def test_empty_store_has_no_registry(store: Store) -> None:
    state = store.load_registry()
    assert (state.version, state.providers, state.models, state.config_hash) == (0, [], [], None)


def test_registry_change_round_trips(store: Store) -> None:
    fast = model("fast", aliases=["f"], price=Price(input_per_mtok=1.5, output_per_mtok=6))
    store.save_registry_change(1, providers=[SIM], models=[fast, model("slow")], config_hash="h1")
    store.save_registry_change(2, models=[fast.model_copy(update={"status": "deprecated"})])
    store.save_registry_change(3, delete_models=["slow"])

    state = store.load_registry()
    assert state.version == 3
    assert state.config_hash == "h1"  # kept when a change does not name one
    assert state.providers == [SIM]
    assert [m.name for m in state.models] == ["fast"]
    assert state.models[0].status == "deprecated"
    assert state.models[0].price.output_per_mtok == 6


def test_registry_change_is_one_transaction(store: Store) -> None:
    store.save_registry_change(1, providers=[SIM], models=[model("a")])
    with pytest.raises(StaleRegistryError):
        store.save_registry_change(1, models=[model("b")], delete_models=["a"])
    state = store.load_registry()
    assert state.version == 1
    assert [m.name for m in state.models] == ["a"]


def test_provider_delete(store: Store) -> None:
    other = ProviderConfig(name="other", type="openai", api_key_env="OPENAI_API_KEY")
    store.save_registry_change(1, providers=[SIM, other])
    store.save_registry_change(2, delete_providers=["other"])
    assert store.load_registry().providers == [SIM]


def test_a_row_that_no_longer_validates_is_skipped(store: Store) -> None:
    store.save_registry_change(1, providers=[SIM], models=[model("good"), model("bad")])
    engine = create_engine(store.url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE models SET config = :c WHERE name = 'bad'"),
                {"c": '{"name": "bad", "provider": "sim", "no_such_field": 1}'},
            )
    finally:
        engine.dispose()
    assert [m.name for m in store.load_registry().models] == ["good"]


# ---------------------------------------------------------------- usage and audit


def usage(request_id: str, **fields: object) -> UsageRecord:
    defaults: dict[str, object] = {"tenant": "acme", "model": "fast", "provider": "sim"}
    return UsageRecord(request_id=request_id, **(defaults | fields))


def test_usage_is_written_in_batches_and_read_back(store: Store) -> None:
    at = datetime(2026, 8, 21, 12, 0, 0, 123456, tzinfo=UTC)
    record = usage(
        "req-1",
        at=at,
        key_id="key_1",
        upstream="fast-v1",
        prompt_tokens=10,
        completion_tokens=5,
        cached_tokens=2,
        cost_usd=0.00012,
        latency_ms=41.5,
        ttft_ms=12.25,
        status=200,
        stream=True,
    )
    assert store.write_usage([record, *(usage(f"req-{i}", at=at) for i in range(2, 600))]) == 599
    assert store.write_usage([]) == 0
    rows = store.list_usage(limit=1000)
    assert len(rows) == 599
    assert next(r for r in rows if r.request_id == "req-1") == record


def test_timestamps_come_back_aware_utc(store: Store) -> None:
    local = datetime(2026, 8, 21, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    store.write_usage([usage("r", at=local)])
    (row,) = store.list_usage()
    assert row.at == local
    assert row.at.tzinfo == UTC
    with pytest.raises(Exception, match="naive datetime"):
        store.write_usage([usage("naive", at=datetime(2026, 8, 21))])


def test_usage_summary_groups_and_filters(store: Store) -> None:
    t0 = datetime(2026, 8, 21, tzinfo=UTC)
    store.write_usage(
        [
            usage("1", at=t0, prompt_tokens=10, completion_tokens=1, cost_usd=0.5, latency_ms=10),
            usage("2", at=t0 + timedelta(hours=1), prompt_tokens=20, cost_usd=0.25, latency_ms=30),
            usage("3", at=t0, status=429, error_code="rate_limit_exceeded", latency_ms=5),
            usage("4", at=t0, tenant="globex", model="smart", prompt_tokens=7, cached_tokens=3),
        ]
    )
    summary = {tuple(s.group.values()): s for s in store.usage_summary()}
    acme = summary[("acme", "fast")]
    assert (acme.requests, acme.errors, acme.prompt_tokens, acme.completion_tokens) == (3, 1, 30, 1)
    assert acme.cost_usd == pytest.approx(0.75)
    assert acme.avg_latency_ms == pytest.approx(15)
    assert summary[("globex", "smart")].cached_tokens == 3

    (only,) = store.usage_summary(tenant="acme", since=t0 + timedelta(minutes=30), group_by=[])
    assert (only.group, only.requests, only.prompt_tokens) == ({}, 1, 20)
    before = store.usage_summary(until=t0 + timedelta(minutes=30), group_by=["tenant"])
    assert [(s.group["tenant"], s.requests) for s in before] == [("acme", 2), ("globex", 1)]
    by_status = store.usage_summary(model="fast", group_by=["status"])
    assert [(s.group["status"], s.requests) for s in by_status] == [(200, 2), (429, 1)]
    assert store.usage_summary(tenant="nobody") == []


def test_audit_round_trips(store: Store) -> None:
    events = [
        AuditEvent(
            request_id=f"req-{i}",
            key_id="key_1",
            tenant="acme",
            action="chat.completions",
            path="/v1/chat/completions",
            status=200,
            model="fast",
            detail={"stream": False, "attempts": [{"provider": "sim", "status": 200}]},
        )
        for i in range(3)
    ]
    assert store.write_audit(events) == 3
    assert store.write_audit([]) == 0
    read = store.list_audit(tenant="acme")
    assert sorted(read, key=lambda e: e.request_id or "") == events
    assert store.list_audit(tenant="other") == []


# ---------------------------------------------------------------- API keys


def test_key_lifecycle(store: Store) -> None:
    key = store.add_key("a" * 64, prefix="sk-llmgw-ab", name="ci", tenant="acme", scopes=["chat"])
    assert key.id.startswith("key_") and key.active
    assert store.find_key("a" * 64) == key
    assert store.find_key("b" * 64) is None

    other = store.add_key("b" * 64, prefix="sk-llmgw-cd", name="admin", tenant="globex")
    assert [k.id for k in store.list_keys()] == [key.id, other.id]
    assert store.list_keys(tenant="globex") == [other]

    revoked = store.revoke_key(key.id)
    assert revoked is not None and not revoked.active
    assert store.find_key("a" * 64) == revoked
    assert store.revoke_key(key.id) == revoked  # the first revocation time stays
    assert store.revoke_key("key_unknown") is None
    assert store.list_keys(include_revoked=False) == [other]


def test_a_key_hash_is_stored_once(store: Store) -> None:
    store.add_key("c" * 64, prefix="sk-1", name="one", tenant="acme")
    with pytest.raises(ConflictError):
        store.add_key("c" * 64, prefix="sk-2", name="two", tenant="acme")
    assert len(store.list_keys()) == 1


# ---------------------------------------------------------------- several processes


_WRITER = textwrap.dedent(
    """
    import sys
    from gateway.store import Store, UsageRecord
    store = Store(sys.argv[1])
    store.migrate()
    for batch in range(40):
        store.write_usage(
            [UsageRecord(request_id=f"{sys.argv[2]}-{batch}-{i}") for i in range(25)]
        )
    """
)


def test_processes_share_one_database(store_url: str) -> None:
    """Several processes migrate and write at once (the registry actor and the usage writer)."""
    workers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, store_url, f"w{n}"], cwd=ROOT)
        for n in range(3)
    ]
    store = Store(store_url)
    store.migrate()
    for version in range(1, 21):
        store.save_registry_change(version, providers=[SIM], models=[model(f"m{version}")])
    assert [w.wait(timeout=120) for w in workers] == [0, 0, 0]
    (total,) = store.usage_summary(group_by=[])
    assert total.requests == 3 * 40 * 25
    assert store.load_registry().version == 20
    store.close()


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'deep' / 'dir' / 'llmgw.db'}")
    store.migrate()
    with store._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    store.close()


def test_in_memory_sqlite(tmp_path: Path) -> None:
    store = Store("sqlite://")
    store.migrate()
    store.save_registry_change(1, providers=[SIM])
    assert store.load_registry().providers == [SIM]


def test_a_bare_postgresql_url_uses_psycopg() -> None:
    for given in ("postgresql://u@db:5432/llmgw", "postgres://u@db:5432/llmgw"):
        store = Store(given)
        assert store.url.drivername == "postgresql+psycopg"
        assert store.dialect == "postgresql"
        store.close()
