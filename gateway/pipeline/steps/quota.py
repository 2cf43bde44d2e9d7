"""The quota step: reserve a request's worst case against its tenant's and key's limits.

Runs after `route` (the candidates' prices are known) and before `invoke`. The reservation is
one request, the prompt estimate plus the output limit in tokens, and the worst-case dollars at
the priciest candidate; `finish` settles it with what the call really used, or gives it all
back when no call was made or the call failed without usage.
"""

from __future__ import annotations

import weakref
from typing import Any

from gateway.errors import BudgetExceededError, RateLimitError, ServiceUnavailableError
from gateway.pipeline.context import RequestContext
from gateway.pipeline.step import Step
from gateway.quota.leases import QuotaExceeded, QuotaUnavailable, Reservation
from gateway.tenancy.access import Quota


def worst_case(ctx: RequestContext) -> dict[str, float]:
    """What the request may cost at most, by metric: requests, tokens, usd."""
    assert ctx.route_request is not None and ctx.decision is not None
    prompt = ctx.route_request.prompt_tokens
    asked = ctx.route_request.max_output_tokens
    choices = (ctx.chat.n or 1) if ctx.chat is not None else 0  # embeddings have no output
    tokens = usd = 0.0
    for candidate in ctx.decision.candidates:
        model = candidate.model
        output = choices * (asked or model.max_output_tokens)
        tokens = max(tokens, float(prompt + output))
        usd = max(usd, model.price.cost(prompt, output, 0))
    return {"requests": 1.0, "tokens": tokens, "usd": usd}


def spent(ctx: RequestContext) -> dict[str, float] | None:
    """What the call really used, by metric; None when nothing was used (no call, or a
    failure without usage)."""
    usage, model = ctx.usage, ctx.model
    if usage is None or model is None:
        return None
    return {
        "requests": 1.0,
        "tokens": float(usage.prompt_tokens + usage.completion_tokens),
        "usd": model.price.cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens),
    }


def refusal(exc: QuotaExceeded) -> RateLimitError | BudgetExceededError:
    """The 429 a client sees, naming the limit and whose it is."""
    quota = exc.quota
    if quota.metric == "usd":
        return BudgetExceededError(
            f"Budget exceeded for {quota.label}. Raise the budget or wait for the next period."
        )
    return RateLimitError(
        f"Rate limit reached for {quota.label}. Please try again in {exc.retry_after_s:.0f}s.",
        retry_after=exc.retry_after_s,
    )


def too_large(quota: Quota, amount: float) -> RateLimitError | BudgetExceededError:
    """A request whose worst case alone passes a limit: waiting will not help, a lower
    `max_tokens` may."""
    if quota.metric == "usd":
        return BudgetExceededError(
            f"This request may cost up to ${amount:,.4f} (its prompt plus max_tokens at the "
            f"model's prices), more than the whole budget of {quota.label}. "
            "Set a lower max_tokens."
        )
    return RateLimitError(
        f"Request too large for {quota.label}: it may use up to {amount:,.0f} tokens (its "
        "prompt plus max_tokens). Set a lower max_tokens.",
        param="max_tokens",
    )


def flag(quota: Quota) -> str:
    """How a soft limit passed is flagged: `budget_exceeded:tenant:acme:day`."""
    kind = "budget_exceeded" if quota.metric == "usd" else f"{quota.metric}_limit_exceeded"
    return f"{kind}:{quota.subject}:{quota.period}"


class Reserve(Step):
    """Hold the request's worst case against every quota it counts against, from the replica's
    leases (no actor call unless a lease runs short); settle the real figures after the call."""

    name = "quota"

    def __init__(self, services: Any) -> None:
        super().__init__(services)
        self.book = services.quotas
        # id(ctx) -> (reservation, finalizer); a finalizer settles a context collected without
        # `finish` (its response never started).
        self._held: dict[int, tuple[Reservation, weakref.finalize]] = {}

    async def handle(self, ctx: RequestContext) -> None:
        principal = ctx.principal
        if principal is None or not principal.quotas:
            return
        costs = worst_case(ctx)
        demand = [(q, costs[q.metric]) for q in principal.quotas]
        for quota, amount in demand:
            if quota.hard and amount > quota.limit:
                raise too_large(quota, amount)
        try:
            reservation = await self.book.reserve(demand)
        except QuotaExceeded as exc:
            raise refusal(exc) from None
        except QuotaUnavailable as exc:
            raise ServiceUnavailableError(
                f"limits cannot be checked right now ({exc}); try again shortly",
                code="quota_unavailable",
                retry_after=1.0,
            ) from None
        ctx.flags.extend(flag(q) for q in reservation.over)
        key = id(ctx)
        self._held[key] = (reservation, weakref.finalize(ctx, self._abandoned, key))

    async def finish(self, ctx: RequestContext) -> None:
        held = self._held.pop(id(ctx), None)
        if held is None:
            return
        reservation, finalizer = held
        finalizer.detach()
        used = spent(ctx)
        if used is None:
            self.book.release(reservation)
        else:
            self.book.settle(reservation, used)

    def _abandoned(self, key: int) -> None:
        # The client left before its response started, so the usage is unknown: the call may
        # have been made, and its whole reservation stays spent (never less than was used).
        self._held.pop(key, None)
