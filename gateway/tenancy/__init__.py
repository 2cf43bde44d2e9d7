"""Tenants, API keys, the principals they make, and the quotas those carry."""

from gateway.tenancy.access import AccessSnapshot, KeyEntry, Quota, principal_for
from gateway.tenancy.spec import SCOPES, Budget, KeyRequest, Limits, TenantSpec

__all__ = [
    "SCOPES",
    "AccessSnapshot",
    "Budget",
    "KeyEntry",
    "KeyRequest",
    "Limits",
    "Quota",
    "TenantSpec",
    "principal_for",
]
