"""Tenants and keys in the store, on SQLite and PostgreSQL: versions, snapshots, last use."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.auth import hash_key
from gateway.errors import ConflictError, NotFoundError
from gateway.store import Store, utcnow
from gateway.tenancy.directory import Directory


def test_every_change_moves_the_access_version_on(store: Store) -> None:
    directory = Directory(store)
    assert store.access_version() == 0
    _, v1 = directory.create_tenant({"name": "acme", "limits": {"rpm": 10}})
    key, _, v2 = directory.create_key({"tenant": "acme"})
    _, _, v3 = directory.update_tenant("acme", {"limits": {"tpm": 1000}})
    _, v4 = directory.revoke_key(key.id)
    assert [v1, v2, v3, v4] == [1, 2, 3, 4]
    # Nested settings merge: the rpm set at creation survives the tpm change.
    limits = directory.tenant("acme").limits
    assert (limits.rpm, limits.tpm) == (10, 1000)


def test_the_snapshot_holds_active_keys_by_hash_only(store: Store) -> None:
    directory = Directory(store)
    directory.create_tenant({"name": "acme", "allowed_models": ["a"]})
    kept, kept_secret, _ = directory.create_key({"tenant": "acme", "scopes": ["inference"]})
    gone, gone_secret, _ = directory.create_key({"tenant": "acme"})
    directory.revoke_key(gone.id)
    snapshot = directory.snapshot()
    assert snapshot.version == store.access_version()
    assert set(snapshot.keys) == {hash_key(kept_secret)}
    principal = snapshot.principal(hash_key(kept_secret))
    assert principal is not None and principal.tenant == "acme" and principal.key_id == kept.id
    assert principal.policy.allowed_models == frozenset({"a"})
    assert snapshot.principal(hash_key(gone_secret)) is None
    assert kept_secret not in repr(snapshot)


def test_key_limits_and_expiry_make_quotas(store: Store) -> None:
    directory = Directory(store)
    directory.create_tenant(
        {"name": "acme", "limits": {"rpm": 5, "budgets": [{"usd": 2, "period": "day"}]}}
    )
    key, secret, _ = directory.create_key(
        {"tenant": "acme", "expires_in_s": 3600, "limits": {"tpm": 100}}
    )
    principal = directory.snapshot().principal(hash_key(secret))
    assert principal is not None
    assert {(q.subject, q.metric, q.period, q.limit) for q in principal.quotas} == {
        ("tenant:acme", "requests", "minute", 5.0),
        ("tenant:acme", "usd", "day", 2.0),
        (f"key:{key.id}", "tokens", "minute", 100.0),
    }
    assert principal.expires_at is not None and not principal.expired(principal.expires_at - 1)
    assert principal.expired(principal.expires_at)


def test_conflicts_and_unknowns(store: Store) -> None:
    directory = Directory(store)
    directory.create_tenant({"name": "acme"})
    with pytest.raises(ConflictError):
        directory.create_tenant({"name": "acme"})
    with pytest.raises(NotFoundError):
        directory.create_key({"tenant": "nobody"})
    with pytest.raises(NotFoundError):
        directory.revoke_key("key_nope")
    with pytest.raises(NotFoundError):
        directory.update_tenant("nobody", {"status": "suspended"})


def test_last_used_only_moves_forward(store: Store) -> None:
    directory = Directory(store)
    directory.create_tenant({"name": "acme"})
    key, _, _ = directory.create_key({"tenant": "acme"})
    now = utcnow()
    store.touch_keys({key.id: now})
    store.touch_keys({key.id: now - timedelta(minutes=5)})
    assert directory.key(key.id).last_used_at == now
