"""The store's tenants and API keys: what the access actor reads and the admin API changes.

Every change bumps `access_version` in the same transaction, so a restarted actor resumes at
the version replicas last saw or later.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.errors import ConflictError
from gateway.store.schema import ApiKeyRow, RegistryMetaRow, TenantRow
from gateway.usage.records import utcnow

ACCESS_VERSION = "access_version"


@dataclass(frozen=True, kw_only=True)
class ApiKey:
    """A stored API key: only its SHA-256 hash and a short prefix for display are kept."""

    id: str
    key_hash: str
    prefix: str
    name: str
    tenant: str
    scopes: tuple[str, ...] = ()
    created_at: datetime
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    limits: dict[str, Any] | None = None
    last_used_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def status(self, now: datetime | None = None) -> str:
        """active, revoked or expired."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and (now or utcnow()) >= self.expires_at:
            return "expired"
        return "active"


class AccessTables:
    """Tenants and keys; mixed into `Store`, which supplies the transactions."""

    _reading: Any
    _writing: Any

    # ------------------------------------------------------------------ tenants

    def access_version(self) -> int:
        """The version of the last tenant or key change (0 when none)."""
        with self._reading() as conn:
            return _version(conn)

    def put_tenant(
        self, name: str, spec: Mapping[str, Any], *, create: bool
    ) -> tuple[dict[str, Any] | None, int]:
        """Create (`create`) or replace a tenant's spec; returns the spec before and the new
        access version. Creating one that exists is a conflict; replacing a missing one, None."""
        now = utcnow()
        with self._changing() as (conn, version):
            before = conn.execute(select(TenantRow.spec).where(TenantRow.name == name)).scalar()
            if create and before is not None:
                raise ConflictError(f"tenant '{name}' already exists", param="name")
            if not create and before is None:
                raise LookupError(name)
            if before is None:
                conn.execute(
                    insert(TenantRow),
                    [{"name": name, "spec": dict(spec), "created_at": now, "updated_at": now}],
                )
            else:
                conn.execute(
                    update(TenantRow)
                    .where(TenantRow.name == name)
                    .values(spec=dict(spec), updated_at=now)
                )
        return before, version

    def get_tenant(self, name: str) -> dict[str, Any] | None:
        """A tenant's spec, or None."""
        with self._reading() as conn:
            return conn.execute(select(TenantRow.spec).where(TenantRow.name == name)).scalar()

    def list_tenants(self) -> list[dict[str, Any]]:
        """Every tenant's spec, by name."""
        with self._reading() as conn:
            return list(conn.execute(select(TenantRow.spec).order_by(TenantRow.name)).scalars())

    # ------------------------------------------------------------------ API keys

    def add_key(
        self,
        key_hash: str,
        *,
        prefix: str,
        name: str,
        tenant: str,
        scopes: Iterable[str] = (),
        key_id: str | None = None,
        expires_at: datetime | None = None,
        limits: Mapping[str, Any] | None = None,
    ) -> ApiKey:
        """Store a new key by its SHA-256 hex digest; a hash already stored is a conflict."""
        key = ApiKey(
            id=key_id or f"key_{secrets.token_hex(8)}",
            key_hash=key_hash,
            prefix=prefix,
            name=name,
            tenant=tenant,
            scopes=tuple(scopes),
            created_at=utcnow(),
            expires_at=expires_at,
            limits=dict(limits) if limits is not None else None,
        )
        row = asdict(key) | {"scopes": list(key.scopes)}
        try:
            with self._changing() as (conn, _):
                conn.execute(insert(ApiKeyRow), [row])
        except IntegrityError:
            raise ConflictError(
                f"an API key with this hash or id '{key.id}' is already stored"
            ) from None
        return key

    def find_key(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, revoked or not; None when no key has it."""
        with self._reading() as conn:
            row = conn.execute(select(ApiKeyRow.__table__).where(ApiKeyRow.key_hash == key_hash))
            found = row.first()
        return _key(found._asdict()) if found else None

    def get_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, or None."""
        with self._reading() as conn:
            found = conn.execute(select(ApiKeyRow.__table__).where(ApiKeyRow.id == key_id)).first()
        return _key(found._asdict()) if found else None

    def revoke_key(self, key_id: str) -> ApiKey | None:
        """Mark a key revoked (keeping the first revocation time); None when the id is unknown."""
        with self._changing() as (conn, _):
            conn.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            found = conn.execute(select(ApiKeyRow.__table__).where(ApiKeyRow.id == key_id)).first()
        return _key(found._asdict()) if found else None

    def list_keys(self, *, tenant: str | None = None, include_revoked: bool = True) -> list[ApiKey]:
        """Stored keys, oldest first."""
        query = select(ApiKeyRow.__table__).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        if tenant is not None:
            query = query.where(ApiKeyRow.tenant == tenant)
        if not include_revoked:
            query = query.where(ApiKeyRow.revoked_at.is_(None))
        with self._reading() as conn:
            return [_key(row._asdict()) for row in conn.execute(query)]

    def touch_keys(self, last_used: Mapping[str, datetime]) -> None:
        """Move keys' last-used times forward (never back); no version bump, as nothing a
        replica routes on changed."""
        if not last_used:
            return
        with self._writing() as conn:
            for key_id, at in last_used.items():
                conn.execute(
                    update(ApiKeyRow)
                    .where(
                        ApiKeyRow.id == key_id,
                        (ApiKeyRow.last_used_at.is_(None)) | (ApiKeyRow.last_used_at < at),
                    )
                    .values(last_used_at=at)
                )

    # ------------------------------------------------------------------ internals

    def _changing(self) -> AbstractContextManager[tuple[Connection, int]]:
        return _bumped(self._writing())


def _version(conn: Connection) -> int:
    value = conn.execute(
        select(RegistryMetaRow.value).where(RegistryMetaRow.key == ACCESS_VERSION)
    ).scalar()
    return int(value) if value is not None else 0


class _bumped(AbstractContextManager[tuple[Connection, int]]):
    """A write transaction that also moves `access_version` on by one."""

    def __init__(self, writing: AbstractContextManager[Connection]) -> None:
        self._writing = writing

    def __enter__(self) -> tuple[Connection, int]:
        conn = self._writing.__enter__()
        current = conn.execute(
            select(RegistryMetaRow.value)
            .where(RegistryMetaRow.key == ACCESS_VERSION)
            .with_for_update()
        ).scalar()
        version = (int(current) if current is not None else 0) + 1
        row = {"key": ACCESS_VERSION, "value": str(version)}
        if current is None:
            conn.execute(insert(RegistryMetaRow), [row])
        else:
            conn.execute(
                update(RegistryMetaRow)
                .where(RegistryMetaRow.key == ACCESS_VERSION)
                .values(value=row["value"])
            )
        return conn, version

    def __exit__(self, *exc: Any) -> bool | None:
        return self._writing.__exit__(*exc)


def _key(row: dict[str, Any]) -> ApiKey:
    return ApiKey(**(row | {"scopes": tuple(row["scopes"] or ())}))


def iter_active(keys: Iterable[ApiKey]) -> Iterator[ApiKey]:
    """Keys not revoked (expired ones stay: replicas refuse them by their expiry)."""
    return (k for k in keys if k.revoked_at is None)
