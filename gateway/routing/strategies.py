"""The ranking strategies: each walks a use case's pre-sorted list with the request's filters
and returns the first few models that pass, best first.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Iterator

from gateway.config import RoutingConfig
from gateway.registry.snapshot import RegistrySnapshot
from gateway.routing.eligibility import Constraints
from gateway.routing.table import Entry, UseCaseTable

Pick = tuple[Entry, float, str]  # a chosen model, its score, why
Ranker = Callable[[UseCaseTable, Constraints, int, RegistrySnapshot, RoutingConfig], list[Pick]]


# ---------------------------------------------------------------- walking the sorted lists


def _source(uct: UseCaseTable, order: str, c: Constraints) -> Iterable[Entry]:
    """The use case's routable models in `order`, narrowed cheaply when the request allows only
    a few models or providers (so a selective filter does not walk the whole list)."""
    ordered = uct.orders[order]
    if c.models is not None and len(c.models) * 8 < len(ordered):
        positions = uct.positions[order]
        return [e for _, e in sorted(positions[n] for n in c.models if n in positions)]
    if c.providers is not None:
        groups = uct.by_provider[order]
        lists = [groups[p] for p in c.providers if p in groups]
        if sum(map(len, lists)) * 4 < len(ordered):
            if len(lists) == 1:
                return (e for _, e in lists[0])
            return (e for _, e in heapq.merge(*lists))
    return ordered


def _walk(
    source: Iterable[Entry], c: Constraints, k: int, skip: set[str] | None = None
) -> list[Entry]:
    """The first `k` models of `source` that pass every filter (and are not in `skip`)."""
    picked: list[Entry] = []
    failure = c.failure
    for entry in source:
        if skip and entry.name in skip:
            continue
        if failure(entry):
            continue
        picked.append(entry)
        if len(picked) >= k:
            break
    return picked


def _group(uct: UseCaseTable, order: str, item: str, snapshot: RegistrySnapshot) -> Iterator[Entry]:
    """The models a preference names, in `order`: the model it names, or its provider's."""
    model = snapshot.resolve(item)
    named = None
    if model is not None:
        hit = uct.positions[order].get(model.name)
        if hit is not None:
            named = hit[1]
            yield named
    for _, entry in uct.by_provider[order].get(item, ()):
        if entry is not named:
            yield entry


def _distinct(*items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(x for group in items for x in group))


# ---------------------------------------------------------------- strategies


def _by_capability(
    uct: UseCaseTable, c: Constraints, k: int, snapshot: RegistrySnapshot, config: RoutingConfig
) -> list[Pick]:
    chosen = _walk(_source(uct, "capability", c), c, k)
    return [(e, e.quality, f"#{i} by quality: {e.detail}") for i, e in enumerate(chosen, 1)]


def _by_cost(
    uct: UseCaseTable, c: Constraints, k: int, snapshot: RegistrySnapshot, config: RoutingConfig
) -> list[Pick]:
    chosen = _walk(_source(uct, "cost", c), c, k)
    return [(e, e.price, f"#{i} by cost: {e.detail}") for i, e in enumerate(chosen, 1)]


def _by_latency(
    uct: UseCaseTable, c: Constraints, k: int, snapshot: RegistrySnapshot, config: RoutingConfig
) -> list[Pick]:
    chosen = _walk(_source(uct, "latency", c), c, k)
    return [
        (e, math.inf if e.p50 is None else e.p50, f"#{i} by p50 latency: {e.detail}")
        for i, e in enumerate(chosen, 1)
    ]


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
        for e in _walk(_group(uct, "capability", item, snapshot), c, k - len(picks), taken):
            taken.add(e.name)
            picks.append((e, e.quality, f"preferred by {who} ('{item}'): {e.detail}"))
        if len(picks) >= k:
            return picks
    for e in _walk(_source(uct, "preference", c), c, k - len(picks), taken):
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
    if wanted is None:
        wanted = _distinct(request.prefer, request.policy.preferred_providers)
    if not wanted:
        chosen = _walk(_source(uct, "hybrid", c), c, k, taken)
        return [(e, e.hybrid, f"hybrid score {e.hybrid:.2f}: {e.detail}") for e in chosen]
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
        for e in _walk(_group(uct, "hybrid", item, snapshot), c, k, seen):
            seen.add(e.name)
            score = e.hybrid + weight * (max(bonus, e.config_bonus) - e.config_bonus)
            scored.append((-score, e.name, e, item))
    for e in _walk(_source(uct, "hybrid", c), c, k, seen):
        scored.append((-e.hybrid, e.name, e, None))
    scored.sort(key=lambda item: (item[0], item[1]))
    picks = []
    for negative, _, e, item in scored[:k]:
        pref = f", preferred ('{item}')" if item is not None else ""
        picks.append((e, -negative, f"hybrid score {-negative:.2f}{pref}: {e.detail}"))
    return picks


def _by_tenant(
    uct: UseCaseTable, c: Constraints, k: int, snapshot: RegistrySnapshot, config: RoutingConfig
) -> list[Pick]:
    policy = c.request.policy
    picks: list[Pick] = []
    taken: set[str] = set()
    for item in _distinct(policy.preferred_models, policy.preferred_providers):
        kind = "model" if item in policy.preferred_models else "provider"
        for e in _walk(_group(uct, "hybrid", item, snapshot), c, k - len(picks), taken):
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
}
