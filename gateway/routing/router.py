"""Choosing the models for a request: a named model and its fallbacks, or `auto` ranked by a
strategy over a routing table precomputed per snapshot.

A decision walks a pre-sorted list, applies every filter to each model it meets, and stops
after `max_candidates`; nothing per request is proportional to the registry's size.
"""

from __future__ import annotations

import math
from typing import get_args

from gateway.config import RoutingConfig, Strategy
from gateway.errors import (
    ContextLengthError,
    InvalidRequestError,
    ModelNotFoundError,
    ServiceUnavailableError,
)
from gateway.providers.support import refusal
from gateway.registry.snapshot import RegistrySnapshot
from gateway.routing.circuit import CircuitBoard
from gateway.routing.decision import Candidate, RouteDecision
from gateway.routing.eligibility import (
    CAPABILITY_PARAMS,
    CIRCUIT,
    Constraints,
    diagnose,
    no_use_case,
)
from gateway.routing.request import AUTO, RouteRequest, TenantPolicy
from gateway.routing.strategies import RANKERS
from gateway.routing.table import Entry, RoutingTable, UseCaseTable, routing_table

STRATEGIES: tuple[str, ...] = get_args(Strategy)
DEFAULT_USE_CASE = "chat"


def plan(
    request: RouteRequest,
    snapshot: RegistrySnapshot,
    config: RoutingConfig,
    circuits: CircuitBoard | None = None,
    *,
    explain: bool = False,
) -> RouteDecision:
    """The ordered candidates (the fallback chain) for `request`; a GatewayError if none.

    With `explain`, `rejected` lists every other model and why it was not chosen.
    """
    table = routing_table(snapshot, config)
    if request.model == AUTO:
        return _plan_auto(request, snapshot, table, config, circuits, explain)
    return _plan_named(request, snapshot, table, config, circuits)


def prepare(snapshot: RegistrySnapshot, config: RoutingConfig) -> None:
    """Build the routing table for a newly pushed snapshot now, off the request path.

    Otherwise the first decision on each new registry or stats version pays for it (~20 ms
    at 1,000 models).
    """
    routing_table(snapshot, config)


# ---------------------------------------------------------------- a named model


def _permitted(entry: Entry, policy: TenantPolicy) -> bool:
    if not policy.permits(entry.name, entry.provider):
        return False
    return policy.max_cost_per_mtok is None or entry.price <= policy.max_cost_per_mtok


def _plan_named(
    request: RouteRequest,
    snapshot: RegistrySnapshot,
    table: RoutingTable,
    config: RoutingConfig,
    circuits: CircuitBoard | None,
) -> RouteDecision:
    model = snapshot.resolve(request.model)
    head = table.entries[model.name] if model is not None else None
    # A model this key may not use answers exactly like one that does not exist.
    if head is None or not _permitted(head, request.policy):
        raise ModelNotFoundError(
            f"The model '{request.model}' does not exist or you do not have access to it.",
            param="model",
        )
    # The client's hints steer what the gateway chooses (the fallbacks), never the model it
    # named; deprecated fallbacks are fine, since the operator listed them.
    c = Constraints(request, circuits, deprecated_ok=True)
    if head.caps & c.need != c.need:
        missing = c.missing(head)[0]
        raise InvalidRequestError(
            f"The model '{request.model}' does not support {missing}.",
            param=CAPABILITY_PARAMS.get(missing),
            code="unsupported_parameter",
        )
    refused = head.refuses & request.params
    if refused:
        # The 400 its adapter would answer, before any hop.
        raise refusal(min(refused), head.provider_type)
    _check_size(request, head)
    candidates: list[Candidate] = []
    rejected: list[tuple[str, str]] = []
    wait = math.inf
    if c.circuit_open(head):
        wait = c.circuit_wait(head)
        rejected.append((head.name, c.describe(CIRCUIT, head)))
    else:
        candidates.append(Candidate(head.model, 0.0, "named model"))
    if request.fallback and config.fallback:
        fallbacks, unknown = table.chain(head.name)
        rejected += unknown
        for entry, reason in fallbacks:
            code = c.failure(entry)
            if not code:
                candidates.append(Candidate(entry.model, 0.0, reason))
                continue
            if code == CIRCUIT:
                wait = min(wait, c.circuit_wait(entry))
            rejected.append((entry.name, c.describe(code, entry)))
    if not candidates:
        raise ServiceUnavailableError(
            f"The model '{request.model}' takes no calls now ({c.describe(CIRCUIT, head)}) "
            f"and no fallback can take the request; retry after {wait:.0f} s.",
            retry_after=wait,
            provider=head.provider,
        )
    return RouteDecision("named", candidates, rejected)


def _check_size(request: RouteRequest, head: Entry) -> None:
    """A named model must be able to take the prompt and write what was asked, before any
    provider is called (its fallbacks are filtered on the same tests)."""
    output = request.max_output_tokens or 0
    if output > head.max_output:
        raise InvalidRequestError(
            f"{request.output_param} is too large: {output}. The model '{request.model}' "
            f"supports at most {head.max_output} completion tokens.",
            param=request.output_param,
            code="invalid_value",
        )
    needed = request.prompt_tokens + output
    if needed > head.context_window:
        raise ContextLengthError(
            f"This model's maximum context length is {head.context_window} tokens. However, "
            f"you requested about {needed} tokens ({request.prompt_tokens} in the messages, "
            f"{output} in the completion). Please reduce the length of the messages or "
            "completion.",
            param="messages",
        )


# ---------------------------------------------------------------- auto


def _strategy(request: RouteRequest, config: RoutingConfig) -> str:
    strategy = request.strategy or request.policy.default_strategy or config.strategy
    if strategy not in STRATEGIES:
        raise InvalidRequestError(
            f"Invalid routing strategy '{strategy}': expected one of {', '.join(STRATEGIES)}.",
            param="route.strategy",
        )
    return strategy


def _plan_auto(
    request: RouteRequest,
    snapshot: RegistrySnapshot,
    table: RoutingTable,
    config: RoutingConfig,
    circuits: CircuitBoard | None,
    explain: bool,
) -> RouteDecision:
    use_case = request.use_case or DEFAULT_USE_CASE
    strategy = _strategy(request, config)
    k = config.max_candidates if request.fallback and config.fallback else 1
    uct = table.use_cases.get(use_case)
    if uct is None:
        raise no_use_case(use_case, request.use_case is not None)
    c = Constraints(request, circuits)
    picks = RANKERS[strategy](uct, c, k, snapshot, config)
    if not picks:
        raise diagnose(use_case, uct.served, c)
    decision = RouteDecision(strategy, [Candidate(e.model, s, why) for e, s, why in picks])
    if explain:
        decision.rejected = _rejections(table, uct, c, decision)
    return decision


def _rejections(
    table: RoutingTable, uct: UseCaseTable, c: Constraints, decision: RouteDecision
) -> list[tuple[str, str]]:
    chosen = set(decision.names())
    serving = {e.name: e for e in uct.served}
    below = f"eligible, ranked below the top {len(chosen)} by {decision.strategy}"
    rejected = []
    for name in table.entries:
        if name in chosen:
            continue
        entry = serving.get(name)
        if entry is None:
            rejected.append((name, f"does not serve use case '{uct.use_case}'"))
            continue
        code = c.failure(entry)
        rejected.append((name, c.describe(code, entry) if code else below))
    return rejected
