"""Tenants and keys over the store: the changes the admin API makes, and the snapshot
replicas are pushed. The access actor holds one; the in-process gateway holds another."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gateway.auth import KEY_PREFIX, hash_key, new_key
from gateway.errors import InvalidRequestError, NotFoundError
from gateway.pipeline.steps.admission import validation_error
from gateway.store import ApiKey, Store, utcnow
from gateway.store.access import iter_active
from gateway.tenancy.access import AccessSnapshot, KeyEntry
from gateway.tenancy.spec import KeyRequest, Limits, TenantSpec

Spec = TypeVar("Spec", bound=BaseModel)

# How much of a key is shown when listing it: the fixed prefix and a few random characters.
VISIBLE_PREFIX = len(KEY_PREFIX) + 4


def _merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for field, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(field), dict):
            out[field] = _merge(out[field], value)
        else:
            out[field] = value
    return out


def _parse(kind: type[Spec], data: Mapping[str, Any]) -> Spec:
    """A spec from a request body; a 400 naming the field when it does not fit."""
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def key_view(key: ApiKey) -> dict[str, Any]:
    """A key as listings show it: never the hash, never the key."""
    return {
        "id": key.id,
        "prefix": key.prefix,
        "name": key.name,
        "tenant": key.tenant,
        "scopes": list(key.scopes),
        "status": key.status(),
        "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "limits": key.limits,
    }


class Directory:
    """Tenants and their keys in one store; every change returns the new access version."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------------ tenants

    def create_tenant(self, data: Mapping[str, Any]) -> tuple[TenantSpec, int]:
        spec = _parse(TenantSpec, data)
        _, version = self.store.put_tenant(spec.name, spec.model_dump(mode="json"), create=True)
        return spec, version

    def update_tenant(
        self, name: str, changes: Mapping[str, Any]
    ) -> tuple[TenantSpec, TenantSpec, int]:
        """Merge `changes` into a tenant (nested mappings merge); returns before, after and
        the version."""
        before = self.tenant(name)
        if "name" in changes and changes["name"] != name:
            raise InvalidRequestError("a tenant cannot be renamed", param="name")
        after = _parse(TenantSpec, _merge(before.model_dump(mode="json"), changes))
        _, version = self.store.put_tenant(name, after.model_dump(mode="json"), create=False)
        return before, after, version

    def tenant(self, name: str) -> TenantSpec:
        data = self.store.get_tenant(name)
        if data is None:
            raise NotFoundError(f"no tenant named '{name}'", param="name")
        return TenantSpec.model_validate(data)

    def tenants(self) -> list[TenantSpec]:
        return [TenantSpec.model_validate(d) for d in self.store.list_tenants()]

    # ------------------------------------------------------------------ keys

    def create_key(self, data: Mapping[str, Any]) -> tuple[ApiKey, str, int]:
        """A new key for a tenant: the stored record, the key itself (shown once), version."""
        request = _parse(KeyRequest, data)
        self.tenant(request.tenant)  # a key needs a tenant that exists
        secret = new_key()
        expires = (
            utcnow() + timedelta(seconds=request.expires_in_s)
            if request.expires_in_s is not None
            else None
        )
        key = self.store.add_key(
            hash_key(secret),
            prefix=secret[:VISIBLE_PREFIX],
            name=request.name,
            tenant=request.tenant,
            scopes=request.scopes,
            expires_at=expires,
            limits=request.limits.model_dump(mode="json") if request.limits else None,
        )
        return key, secret, self.store.access_version()

    def revoke_key(self, key_id: str) -> tuple[ApiKey, int]:
        key = self.store.revoke_key(key_id)
        if key is None:
            raise NotFoundError(f"no API key with id '{key_id}'", param="key_id")
        return key, self.store.access_version()

    def key(self, key_id: str) -> ApiKey:
        key = self.store.get_key(key_id)
        if key is None:
            raise NotFoundError(f"no API key with id '{key_id}'", param="key_id")
        return key

    def keys(self, tenant: str | None = None) -> list[ApiKey]:
        return self.store.list_keys(tenant=tenant)

    # ------------------------------------------------------------------ snapshot

    def snapshot(self) -> AccessSnapshot:
        """Every tenant and every unrevoked key, at the store's access version."""
        version = self.store.access_version()
        tenants = {t.name: t for t in self.tenants()}
        keys = {
            k.key_hash: KeyEntry(
                id=k.id,
                key_hash=k.key_hash,
                tenant=k.tenant,
                scopes=k.scopes,
                expires_at=k.expires_at,
                limits=Limits.model_validate(k.limits) if k.limits else None,
            )
            for k in iter_active(self.store.list_keys(include_revoked=False))
        }
        return AccessSnapshot(version=version, tenants=tenants, keys=keys)
