"""Routing tables: each use case's models pre-sorted by every strategy's static key.

Built once per (registry version, stats version, routing config) and cached, so a decision
walks a sorted list and stops after a few candidates instead of sorting every model.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import get_args

from gateway.config import Capability, ModelConfig, RoutingConfig
from gateway.providers.support import support
from gateway.registry.snapshot import ModelStats, RegistrySnapshot

CAPABILITY_BITS: dict[str, int] = {name: 1 << i for i, name in enumerate(get_args(Capability))}
# A capability no model can declare (a typo, a newer client): no model has this bit.
_UNKNOWN_CAPABILITY = 1 << 40

# Hybrid scoring: log prices need a floor because free models (sim, ollama) cost $0.
_PRICE_FLOOR = 0.01
# Error rates from fewer calls than this are shrunk towards 0, so one failed call among
# three does not sink a model until there is evidence.
_ERROR_EVIDENCE = 20
# An unmeasured model sits mid-way between the fastest and slowest measured ones.
_UNKNOWN_LATENCY = 0.5
_NO_STATS = ModelStats()

# A named model's fallbacks, each with its reason; and fallbacks the registry does not know.
Chain = tuple[list[tuple["Entry", str]], list[tuple[str, str]]]


def capability_mask(capabilities: Iterable[str]) -> int:
    """Capabilities as bits, so 'has every needed one' is one AND."""
    mask = 0
    for name in capabilities:
        mask |= CAPABILITY_BITS.get(name, _UNKNOWN_CAPABILITY)
    return mask


def money(value: float) -> str:
    return f"${value:.2f}" if value >= 0.01 or value == 0 else f"${value:.2g}"


class Entry:
    """One model as routing sees it within one use case: everything a filter or a key reads."""

    __slots__ = (
        "caps",
        "config_bonus",
        "config_rank",
        "context_window",
        "deprecated",
        "detail",
        "error_rate",
        "hybrid",
        "max_output",
        "model",
        "name",
        "p50",
        "price",
        "provider",
        "provider_type",
        "quality",
        "reasons",
        "refuses",
        "testing",
    )

    def __init__(
        self,
        model: ModelConfig,
        stats: ModelStats,
        config_rank: int,
        bonus: float,
        provider_type: str = "",
    ):
        self.model = model
        self.provider_type = provider_type
        # Request parameters its provider type refuses (`gateway.providers.support`).
        self.refuses = support(provider_type).refuses if provider_type else frozenset()
        self.name = model.name
        self.provider = model.provider
        self.caps = capability_mask(model.capabilities)
        self.context_window = model.context_window
        self.max_output = model.max_output_tokens
        self.price = model.price.blended_per_mtok
        self.p50 = stats.latency_p50_ms
        self.quality = model.quality
        self.testing = model.status == "testing"
        self.deprecated = model.status == "deprecated"
        self.error_rate = stats.errors / max(stats.requests, _ERROR_EVIDENCE)
        self.config_rank = config_rank
        self.config_bonus = bonus
        self.hybrid = 0.0
        p50 = "unmeasured" if self.p50 is None else f"{self.p50:.0f} ms"
        self.detail = f"quality {self.quality:.2f}, cost {money(self.price)}/Mtok, p50 {p50}"
        self.reasons: dict[str, str] = {}

    def copy(self) -> Entry:
        """The same model for another use case (which sets its own hybrid score)."""
        # Field by field: a getattr/setattr loop over __slots__ costs four times as much, and
        # a table makes a copy for every (model, use case).
        twin = Entry.__new__(Entry)
        twin.model, twin.name, twin.provider = self.model, self.name, self.provider
        twin.provider_type, twin.refuses = self.provider_type, self.refuses
        twin.caps, twin.context_window, twin.price = self.caps, self.context_window, self.price
        twin.max_output = self.max_output
        twin.p50, twin.quality, twin.error_rate = self.p50, self.quality, self.error_rate
        twin.testing, twin.deprecated = self.testing, self.deprecated
        twin.config_rank, twin.config_bonus = self.config_rank, self.config_bonus
        twin.hybrid, twin.detail, twin.reasons = self.hybrid, self.detail, self.reasons
        return twin

    def explain_ranks(self) -> None:
        """Each strategy's reason for this model, written once so a decision only looks it up."""
        detail = self.detail
        self.reasons = {
            "capability": "by quality: " + detail,
            "cost": "by cost: " + detail,
            "latency": "by p50 latency: " + detail,
            "hybrid": f"hybrid score {self.hybrid:.2f}: {detail}",
        }


def _keys() -> dict[str, object]:
    return {
        "capability": lambda e: (-e.quality, e.name),
        "cost": lambda e: (e.price, e.name),
        # Unmeasured models rank after every measured one, best quality first.
        "latency": lambda e: (e.p50 is None, e.p50 or 0.0, -e.quality, e.name),
        "hybrid": lambda e: (-e.hybrid, e.name),
        "preference": lambda e: (e.config_rank, -e.quality, e.name),
    }


class UseCaseTable:
    """The models serving one use case: all of them, and the routable ones in every order."""

    __slots__ = ("orders", "positions", "provider_entries", "served", "use_case")

    def __init__(self, use_case: str, served: list[Entry]) -> None:
        self.use_case = use_case
        self.served = served  # every status, for diagnosing why nothing qualified
        routable = [e for e in served if not e.deprecated]
        self.orders: dict[str, list[Entry]] = {}
        # name -> (position in the order, entry): sorting a few entries by position puts them
        # in the order's sequence without comparing entries.
        self.positions: dict[str, dict[str, tuple[int, Entry]]] = {}
        self.provider_entries: dict[str, dict[str, list[Entry]]] = {}
        for entry in routable:
            entry.explain_ranks()
        for order, key in _keys().items():
            ordered = sorted(routable, key=key)  # type: ignore[arg-type]
            self.orders[order] = ordered
            groups: dict[str, list[Entry]] = {}
            positions: dict[str, tuple[int, Entry]] = {}
            for i, entry in enumerate(ordered):
                groups.setdefault(entry.provider, []).append(entry)
                positions[entry.name] = (i, entry)
            self.provider_entries[order] = groups
            self.positions[order] = positions


def _score(entries: list[Entry], config: RoutingConfig) -> None:
    """Set each entry's hybrid score, normalising cost and latency across `entries`."""
    if not entries:
        return
    w = config.weights
    costs = [math.log(e.price + _PRICE_FLOOR) for e in entries]
    low_cost, high_cost = min(costs), max(costs)
    measured = [e.p50 for e in entries if e.p50 is not None]
    low_lat, high_lat = (min(measured), max(measured)) if measured else (0.0, 0.0)
    for entry, cost in zip(entries, costs, strict=True):
        cost_n = (cost - low_cost) / (high_cost - low_cost) if high_cost > low_cost else 0.0
        if entry.p50 is None:
            lat_n = _UNKNOWN_LATENCY if measured else 0.0
        else:
            lat_n = (entry.p50 - low_lat) / (high_lat - low_lat) if high_lat > low_lat else 0.0
        entry.hybrid = (
            w.quality * entry.quality
            - w.cost * cost_n
            - w.latency * lat_n
            + w.preference * entry.config_bonus
            - w.errors * entry.error_rate
        )


class RoutingTable:
    """Everything a decision needs from one snapshot under one routing config, precomputed."""

    def __init__(self, snapshot: RegistrySnapshot, config: RoutingConfig) -> None:
        self.version = snapshot.version
        self.stats_version = snapshot.stats_version
        self.config = config
        self._models = snapshot.models
        self._stats = snapshot.stats
        self._resolve = snapshot.resolve
        self._chains: dict[str, Chain] = {}
        preference = {p: i for i, p in reversed(list(enumerate(config.provider_preference)))}
        ranked = len(config.provider_preference)

        def entry(model: ModelConfig) -> Entry:
            rank = preference.get(model.provider, ranked)
            # Config preferences earn a bonus in (0, 0.5]; a request's or tenant's own
            # preferences earn more (see router), so they outrank the operator's defaults.
            bonus = 0.5 * (1 - rank / ranked) if rank < ranked else 0.0
            provider = snapshot.providers.get(model.provider)
            return Entry(
                model,
                snapshot.stats.get(model.name) or _NO_STATS,
                rank,
                bonus,
                provider.type if provider is not None else "",
            )

        self.entries: dict[str, Entry] = {m.name: entry(m) for m in snapshot.models.values()}
        served: dict[str, list[Entry]] = {}
        for model in snapshot.models.values():
            for use_case in model.use_cases:
                served.setdefault(use_case, []).append(self.entries[model.name].copy())
        self.use_cases: dict[str, UseCaseTable] = {}
        for use_case, entries in served.items():
            _score([e for e in entries if not e.deprecated], config)
            self.use_cases[use_case] = UseCaseTable(use_case, entries)

    def chain(self, name: str) -> Chain:
        """A model's configured fallbacks as entries with their reasons, and the unknown ones."""
        chain = self._chains.get(name)
        if chain is None:
            chain = self._chains[name] = self._build_chain(name)
        return chain

    def _build_chain(self, name: str) -> Chain:
        fallbacks: list[tuple[Entry, str]] = []
        unknown: list[tuple[str, str]] = []
        listed = {name}
        for i, fallback in enumerate(self._models[name].fallbacks, 1):
            model = self._resolve(fallback)
            if model is None:
                unknown.append((fallback, f"fallback #{i} of {name} is not in the registry"))
            elif model.name not in listed:
                listed.add(model.name)
                fallbacks.append((self.entries[model.name], f"fallback #{i} of {name}"))
        return fallbacks, unknown

    def fits(self, snapshot: RegistrySnapshot, config: RoutingConfig) -> bool:
        """Whether this table was built from this snapshot's models and stats and this config."""
        return (
            self._models is snapshot.models
            and self._stats is snapshot.stats
            and (self.config is config or self.config == config)
        )


_CACHE: dict[tuple[int, int], RoutingTable] = {}
_CACHE_SIZE = 8
_LOCK = threading.Lock()


def routing_table(snapshot: RegistrySnapshot, config: RoutingConfig) -> RoutingTable:
    """The cached table for this snapshot and config, built on first use."""
    key = (snapshot.version, snapshot.stats_version)
    table = _CACHE.get(key)
    # Versions alone are not enough: two registries in one process (tests, a CLI next to a
    # replica) can both be at version 1, so the table also checks it was built from these
    # very objects (it holds them, so their ids cannot be reused while it is cached).
    if table is not None and table.fits(snapshot, config):
        return table
    table = RoutingTable(snapshot, config)
    with _LOCK:
        if key not in _CACHE and len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = table
    return table
