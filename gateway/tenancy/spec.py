"""Tenants and their keys as an admin writes them: pydantic models checked at the admin API.

A tenant is a team sharing the gateway: what it may use, how it likes requests routed, how
fast and how much it may spend, and whether its request bodies may be kept for audit.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.config import Strategy, UseCase

Scope = Literal["inference", "usage:read", "admin"]
SCOPES: tuple[str, ...] = ("inference", "usage:read", "admin")
# What `*` grants: everything but `admin`, which is only ever granted by name.
WILDCARD_SCOPES = frozenset({"inference", "usage:read"})

Period = Literal["day", "month"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Budget(_Spec):
    """Spend allowed per calendar period in UTC; hard refuses past it, soft serves and flags."""

    usd: float = Field(gt=0, le=1e9)
    period: Period = "month"
    hard: bool = True


class Limits(_Spec):
    """Rates and budgets; None or empty means no limit of that kind."""

    rpm: int | None = Field(default=None, ge=1, le=10_000_000, description="requests per minute")
    tpm: int | None = Field(default=None, ge=1, le=10_000_000_000, description="tokens per minute")
    budgets: list[Budget] = Field(default_factory=list, max_length=2)

    @field_validator("budgets")
    @classmethod
    def _one_per_period(cls, budgets: list[Budget]) -> list[Budget]:
        periods = [b.period for b in budgets]
        if len(set(periods)) != len(periods):
            raise ValueError("at most one budget per period (day, month)")
        return budgets


class TenantSpec(_Spec):
    """One tenant, as stored and as the admin API takes it."""

    name: str = Field(pattern=NAME_PATTERN)
    status: Literal["active", "suspended"] = "active"
    allowed_models: list[str] | None = Field(default=None, max_length=10_000)
    allowed_use_cases: list[UseCase] | None = None
    allowed_providers: list[str] | None = Field(default=None, max_length=1_000)
    allow_testing: bool = False
    strategy: Strategy | None = None
    min_quality: float | None = Field(
        default=None, ge=0, le=1, description="the quality strategy's threshold for this tenant"
    )
    provider_preference: list[str] = Field(default_factory=list, max_length=100)
    limits: Limits = Field(default_factory=Limits)
    keep_bodies: bool = Field(
        default=False, description="keep request and response bodies in the audit trail"
    )


class KeyRequest(_Spec):
    """What `POST /admin/keys` takes."""

    tenant: str = Field(pattern=NAME_PATTERN)
    name: str = Field(default="", max_length=200)
    scopes: list[Scope] = Field(default_factory=lambda: ["inference"], min_length=1)
    expires_in_s: float | None = Field(default=None, gt=0, le=10 * 365 * 86400)
    limits: Limits | None = None
