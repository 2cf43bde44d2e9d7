"""The ranking strategies: each walks a use case's pre-sorted list with the request's filters
and returns the first few models that pass, best first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from gateway.config import RoutingConfig
from gateway.errors import InvalidRequestError
from gateway.registry.snapshot import RegistrySnapshot
from gateway.routing.eligibility import Constraints
from gateway.routing.table import Entry, UseCaseTable, money

Pick = tuple[Entry, float, str]  # a chosen model, its score, why
Ranker = Callable[[UseCaseTable, Constraints, int, RegistrySnapshot, RoutingConfig], list[Pick]]


# ---------------------------------------------------------------- walking the sorted lists


def _best(
    uct: UseCaseTable, order: str, c: Constraints, k: int, skip: set[str] | None = None
) -> list[Entry]:
    """The first `k` routable models in `order` that pass every filter (and are not in `skip`).

    When the request allows only a few models or providers, only those are walked, so a
    selective filter does not scan the whole list.
    """
    ordered = uct.orders[order]
    if c.models is not None and len(c.models) * 8 < len(ordered):
        positions = uct.positions[order]
        allowed = sorted(positions[n] for n in c.models if n in positions)
        return c.take([e for _, e in allowed], k, skip)
    if c.providers is not None:
        groups = uct.provider_entries[order]
        lists = [groups[p] for p in c.providers if p in groups]
        if sum(map(len, lists)) * 4 < len(ordered):
            if len(lists) == 1:
                return c.take(lists[0], k, skip)
            # The first k of several providers together are among each one's own first k.
            positions = uct.positions[order]
            firsts = sorted(positions[e.name] for group in lists for e in c.take(group, k, skip))
            return [e for _, e in firsts[:k]]
    return c.take(ordered, k, skip)


def _group(uct: UseCaseTable, order: str, item: str, snapshot: RegistrySnapshot) -> list[Entry]:
    """The models a preference names, in `order`: the model it names, or its provider's."""
    models = uct.provider_entries[order].get(item, [])
    model = snapshot.resolve(item)
    if model is not None:
        hit = uct.positions[order].get(model.name)
        if hit is not None:
            return [hit[1], *(e for e in models if e is not hit[1])] if models else [hit[1]]
    return models


def _distinct(*items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(x for group in items for x in group))


# ---------------------------------------------------------------- strategies


def _by_capability(
    uct: UseCaseTable, c: Constraints, k: int, snapshot: RegistrySnapshot, config: RoutingConfig
) -> list[Pick]:
    chosen = _best(uct, "capability", c, k)
    return [(e, e.quality, e.reasons["capability"]) for e in chosen]


def _by_cost(
    uct: UseCaseTable, c: Constraints, k: int, snapshot: RegistrySnapshot, config: RoutingConfig
) -> list[Pick]:
    chosen = _best(uct, "cost", c, k)
    return [(e, e.price, e.reasons["cost"]) for e in chosen]


def _by_latency(
    uct: UseCaseTable, c: Constraints, k: int, snapshot: RegistrySnapshot, config: RoutingConfig
) -> list[Pick]:
    chosen = _best(uct, "latency", c, k)
    return [(e, math.inf if e.p50 is None else e.p50, e.reasons["latency"]) for e in chosen]


def _by_preference(
    uct: UseCaseTable, c: Constraints, k: int, snapshot: RegistrySnapshot, config: RoutingConfig
) -> list[Pick]:
    request = c.request
    picks: list[Pick] = []
    taken: set[str] = set()
    # Strict precedence: every eligible model matching an earlier preference comes before
    # any matching a later one; the config's provider order is the presorted tail.
    for item in _distinct(request.prefer, request.policy.preferred_providers):
        who = "the request" if item in request.prefer else "the tenant"
        for e in c.take(_group(uct, "capability", item, snapshot), k - len(picks), taken):
            taken.add(e.name)
            picks.append((e, e.quality, f"preferred by {who} ('{item}'): {e.detail}"))
        if len(picks) >= k:
            return picks
    for e in _best(uct, "preference", c, k - len(picks), taken):
        if e.config_bonus:
            why = f"provider preference #{e.config_rank + 1} ('{e.provider}')"
        else:
            why = "no preference"
        picks.append((e, e.quality, f"{why}: {e.detail}"))
    return picks


def _by_hybrid(
    uct: UseCaseTable,
    c: Constraints,
    k: int,
    snapshot: RegistrySnapshot,
    config: RoutingConfig,
    taken: set[str] | None = None,
    wanted: tuple[str, ...] | None = None,
) -> list[Pick]:
    request = c.request
    if request.min_quality is not None or request.policy.min_quality is not None:
        # A quality threshold set by the request or the tenant: the cheapest model clearing it.
        return _by_quality(uct, c, k, snapshot, config)
    if wanted is None:
        wanted = _distinct(request.prefer, request.policy.preferred_providers)
    if not wanted:
        chosen = _best(uct, "hybrid", c, k, taken)
        return [(e, e.hybrid, e.reasons["hybrid"]) for e in chosen]
    # A request's or tenant's preference adds one bonus per preferred provider or model, so
    # within each preferred group the presorted order still holds. The exact top k is then
    # among each group's top k (with its bonus) and the top k of the plain presorted order.
    # A preferred model met in the plain walk scores without its bonus, but then the k picks
    # of its own group outrank it and everything after it, so it cannot displace a better one.
    weight = config.weights.preference
    seen = set(taken or ())
    scored: list[tuple[float, str, Entry, str | None]] = []
    for i, item in enumerate(wanted):
        bonus = 1.0 - 0.5 * i / len(wanted)  # (0.5, 1]: above any config preference
        for e in c.take(_group(uct, "hybrid", item, snapshot), k, seen):
            seen.add(e.name)
            score = e.hybrid + weight * (max(bonus, e.config_bonus) - e.config_bonus)
            scored.append((-score, e.name, e, item))
    for e in _best(uct, "hybrid", c, k, seen):
        scored.append((-e.hybrid, e.name, e, None))
    scored.sort()  # by score, then name: names are distinct, so entries are never compared
    picks = []
    for negative, _, e, item in scored[:k]:
        if item is None:
            picks.append((e, -negative, e.reasons["hybrid"]))
        else:
            why = f"hybrid score {-negative:.2f}, preferred ('{item}'): {e.detail}"
            picks.append((e, -negative, why))
    return picks


def _clears(e: Entry, use_case: str, threshold: float) -> str | None:
    """Why `e` clears the quality threshold for `use_case`, or None when it does not: judged
    on the published interval's lower bound, so a lucky small sample does not win."""
    published = e.model.published_quality.get(use_case)  # type: ignore[call-overload]
    if published is None or published.ci_low < threshold:
        return None
    return (
        f"cheapest whose published {published.scorer} clears {threshold:.2f}: "
        f"{published.mean:.3f} [{published.ci_low:.3f}, {published.ci_high:.3f}], "
        f"n={published.n}, run {published.run_id}; cost {money(e.price)}/Mtok"
    )


def _first_set(*values: float | None) -> float:
    return next(v for v in values if v is not None)


def _by_quality(
    uct: UseCaseTable, c: Constraints, k: int, snapshot: RegistrySnapshot, config: RoutingConfig
) -> list[Pick]:
    threshold = _first_set(c.request.min_quality, c.request.policy.min_quality, config.min_quality)
    reasons = {}
    for e in uct.orders["cost"]:
        why = _clears(e, uct.use_case, threshold)
        if why is not None:
            reasons[e.name] = why
    chosen = c.take([e for e in uct.orders["cost"] if e.name in reasons], k)
    if not chosen and c.take(uct.orders["cost"], 1):
        raise InvalidRequestError(
            f"No model for use case '{uct.use_case}' has published quality whose 95% interval's"
            f" lower bound clears {threshold:.2f} (publish an eval run with `llmgw eval publish`,"
            " or lower route.min_quality).",
            param="route.min_quality",
        )
    return [(e, e.model.published_quality[uct.use_case].ci_low, reasons[e.name]) for e in chosen]


def _by_tenant(
    uct: UseCaseTable, c: Constraints, k: int, snapshot: RegistrySnapshot, config: RoutingConfig
) -> list[Pick]:
    policy = c.request.policy
    picks: list[Pick] = []
    taken: set[str] = set()
    for item in _distinct(policy.preferred_models, policy.preferred_providers):
        kind = "model" if item in policy.preferred_models else "provider"
        for e in c.take(_group(uct, "hybrid", item, snapshot), k - len(picks), taken):
            taken.add(e.name)
            why = f"tenant prefers {kind} '{item}'; hybrid score {e.hybrid:.2f}: {e.detail}"
            picks.append((e, e.hybrid, why))
        if len(picks) >= k:
            return picks
    rest = _by_hybrid(uct, c, k - len(picks), snapshot, config, taken, _distinct(c.request.prefer))
    return picks + rest


RANKERS: dict[str, Ranker] = {
    "capability": _by_capability,
    "cost": _by_cost,
    "latency": _by_latency,
    "preference": _by_preference,
    "tenant": _by_tenant,
    "hybrid": _by_hybrid,
    "quality": _by_quality,
}
