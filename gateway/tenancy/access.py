"""Who a key belongs to and what it may do, as every ingress replica holds it.

The access actor pushes an `AccessSnapshot` (tenants and active keys, versioned) to every
replica; a request's key is looked up here by hash, in-process. Principals are built once per
snapshot, so the request path does one dict lookup and one expiry check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from gateway.routing.request import OPEN_POLICY, TenantPolicy
from gateway.tenancy.spec import WILDCARD_SCOPES, Limits, TenantSpec

Metric = Literal["requests", "tokens", "usd"]
QuotaPeriod = Literal["minute", "day", "month"]


@dataclass(frozen=True, slots=True)
class Quota:
    """One limit a request counts against: `limit` units of `metric` per `period` (UTC
    calendar periods; minutes are clock minutes) for one subject (`tenant:NAME`, `key:ID`)."""

    subject: str
    metric: Metric
    period: QuotaPeriod
    limit: float
    hard: bool = True

    @property
    def label(self) -> str:
        """How a refusal names it: "tenant 'acme': 100 requests per minute"."""
        kind, _, name = self.subject.partition(":")
        amount = (
            f"${self.limit:,.2f}" if self.metric == "usd" else f"{self.limit:,.0f} {self.metric}"
        )
        return f"{kind} '{name}': {amount} per {self.period}"


def quotas_of(subject: str, limits: Limits | None) -> tuple[Quota, ...]:
    """The quotas a tenant's or key's limits make."""
    if limits is None:
        return ()
    quotas: list[Quota] = []
    if limits.rpm:
        quotas.append(Quota(subject, "requests", "minute", float(limits.rpm)))
    if limits.tpm:
        quotas.append(Quota(subject, "tokens", "minute", float(limits.tpm)))
    quotas.extend(Quota(subject, "usd", b.period, b.usd, b.hard) for b in limits.budgets)
    return tuple(quotas)


def policy_of(tenant: TenantSpec) -> TenantPolicy:
    """What routing reads of a tenant."""
    return TenantPolicy(
        allowed_models=frozenset(tenant.allowed_models)
        if tenant.allowed_models is not None
        else None,
        allowed_providers=frozenset(tenant.allowed_providers)
        if tenant.allowed_providers is not None
        else None,
        preferred_providers=tuple(tenant.provider_preference),
        allow_testing=tenant.allow_testing,
        default_strategy=tenant.strategy,
        min_quality=tenant.min_quality,
    )


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id, its tenant, what it may do, and what it counts against."""

    key_id: str
    tenant: str
    scopes: frozenset[str] = WILDCARD_SCOPES
    quotas: tuple[Quota, ...] = ()
    policy: TenantPolicy = OPEN_POLICY
    allowed_use_cases: frozenset[str] | None = None
    keep_bodies: bool = False
    expires_at: float | None = None  # epoch seconds
    suspended: bool = False

    def may(self, scope: str) -> bool:
        """`*` grants every scope but `admin`, which only a key granted it by name has."""
        if scope in self.scopes:
            return True
        return scope != "admin" and "*" in self.scopes

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


ADMIN = Principal(
    key_id="admin",
    tenant="admin",
    scopes=frozenset({"admin", "inference", "usage:read"}),
    policy=TenantPolicy(allow_testing=True),
)


@dataclass(frozen=True, kw_only=True)
class KeyEntry:
    """An active key as the snapshot carries it: never the key, only its hash."""

    id: str
    key_hash: str
    tenant: str
    scopes: tuple[str, ...]
    expires_at: datetime | None = None
    limits: Limits | None = None


def principal_for(key: KeyEntry, tenant: TenantSpec) -> Principal:
    """The principal a key makes: its scopes and limits, its tenant's policy and limits."""
    return Principal(
        key_id=key.id,
        tenant=tenant.name,
        scopes=frozenset(key.scopes),
        quotas=quotas_of(f"tenant:{tenant.name}", tenant.limits)
        + quotas_of(f"key:{key.id}", key.limits),
        policy=policy_of(tenant),
        allowed_use_cases=frozenset(tenant.allowed_use_cases)
        if tenant.allowed_use_cases is not None
        else None,
        keep_bodies=tenant.keep_bodies,
        expires_at=key.expires_at.timestamp() if key.expires_at is not None else None,
        suspended=tenant.status != "active",
    )


@dataclass(frozen=True)
class AccessSnapshot:
    """Tenants and active keys at one version; `principal(hash)` is the request-path lookup."""

    version: int
    tenants: Mapping[str, TenantSpec] = field(default_factory=dict)
    keys: Mapping[str, KeyEntry] = field(default_factory=dict)  # by key hash
    _principals: dict[str, Principal] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for key_hash, key in self.keys.items():
            tenant = self.tenants.get(key.tenant)
            if tenant is not None:
                self._principals[key_hash] = principal_for(key, tenant)

    def principal(self, key_hash: str) -> Principal | None:
        """The principal of an active key, or None for a key this snapshot does not hold."""
        return self._principals.get(key_hash)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Principals are derived: ship tenants and keys only, rebuild on arrival.
        return (AccessSnapshot, (self.version, dict(self.tenants), dict(self.keys)))


EMPTY_ACCESS = AccessSnapshot(version=0)
