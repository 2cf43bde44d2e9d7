"""Which models one request may go to: the filters, why a model failed them, and the error
to give when none passed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from gateway.errors import (
    ContextLengthError,
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    ServiceUnavailableError,
)
from gateway.routing.circuit import CircuitBoard
from gateway.routing.request import RouteRequest
from gateway.routing.table import Entry, capability_mask, money

# Why a model was left out, in the order the filters apply. The order matters: when nothing
# qualifies, the last filter that still had models to remove is the one the error names.
OK, STATUS, POLICY, PROVIDERS, CAPABILITY, REFUSED = range(6)
OUTPUT, CONTEXT, COST, LATENCY, CIRCUIT = range(6, 11)

# The request parameter that asks for each capability, for a 400's `param`.
CAPABILITY_PARAMS: dict[str, str] = {
    "tools": "tools",
    "vision": "messages",
    "json_mode": "response_format",
    "streaming": "stream",
    "embeddings": "model",
    "chat": "model",
}
_NEED_MASKS: dict[frozenset[str], int] = {}
_CAPABILITY_ORDER = ("tools", "vision", "json_mode", "streaming", "embeddings", "chat")


def capability_order(needs: frozenset[str]) -> list[str]:
    """Needed capabilities in a fixed order, so errors name the same one every time."""
    known = [c for c in _CAPABILITY_ORDER if c in needs]
    return known + sorted(needs - set(known))


class Constraints:
    """The filters one request puts on candidate models: `take` on the hot path, `failure`
    (the same tests, saying which one failed) for explanations and errors."""

    __slots__ = (
        "board",
        "context",
        "deprecated_ok",
        "max_cost",
        "max_latency",
        "models",
        "need",
        "needs",
        "now",
        "output",
        "params",
        "policy_cost",
        "policy_providers",
        "providers",
        "request",
        "request_cost",
        "request_providers",
        "testing_ok",
        "tripped",
    )

    def __init__(
        self,
        request: RouteRequest,
        circuits: CircuitBoard | None,
        deprecated_ok: bool = False,
    ) -> None:
        policy = request.policy
        self.request = request
        self.needs = request.needs
        need = _NEED_MASKS.get(request.needs)
        if need is None:
            need = capability_mask(request.needs)
            if len(_NEED_MASKS) < 256:  # needs come from a small vocabulary; stay bounded anyway
                _NEED_MASKS[request.needs] = need
        self.need = need
        self.params = request.params
        self.testing_ok = policy.allow_testing
        self.deprecated_ok = deprecated_ok
        self.models = policy.allowed_models
        self.policy_providers = policy.allowed_providers
        self.request_providers = request.providers
        if policy.allowed_providers is None:
            self.providers = request.providers
        elif request.providers is None:
            self.providers = policy.allowed_providers
        else:
            self.providers = request.providers & policy.allowed_providers
        self.output = request.max_output_tokens or 0
        self.context = request.prompt_tokens + self.output
        self.request_cost = request.max_cost_per_mtok
        self.policy_cost = policy.max_cost_per_mtok
        if self.policy_cost is None or (
            self.request_cost is not None and self.request_cost < self.policy_cost
        ):
            self.max_cost = self.request_cost
        else:
            self.max_cost = self.policy_cost
        self.max_latency = request.max_latency_ms
        self.board = circuits
        # (provider, model) of circuits that are not closed: usually none, so one truth test.
        self.tripped = circuits.tripped if circuits is not None and circuits.tripped else None
        self.now = circuits.clock() if self.tripped else 0.0

    def failure(self, e: Entry) -> int:
        """0 if the model may serve this request, else the first filter it fails."""
        if (e.testing and not self.testing_ok) or (e.deprecated and not self.deprecated_ok):
            return STATUS
        if self.models is not None and e.name not in self.models:
            return POLICY
        if self.policy_providers is not None and e.provider not in self.policy_providers:
            return POLICY
        if self.request_providers is not None and e.provider not in self.request_providers:
            return PROVIDERS
        if e.caps & self.need != self.need:
            return CAPABILITY
        if e.refuses & self.params:
            return REFUSED
        if e.max_output < self.output:
            return OUTPUT
        if e.context_window < self.context:
            return CONTEXT
        if self.max_cost is not None and e.price > self.max_cost:
            return COST
        if self.max_latency is not None and e.p50 is not None and e.p50 > self.max_latency:
            return LATENCY
        if self.tripped and (e.provider, e.name) in self.tripped and self.circuit_open(e):
            return CIRCUIT
        return OK

    def take(self, source: Iterable[Entry], k: int, skip: set[str] | None = None) -> list[Entry]:
        """The first `k` models of `source` that pass every filter (and are not in `skip`).

        The same tests as `failure`, inlined over locals: this loop is every decision's hot
        path. The 1,000-model reference test holds the two to the same answers.
        """
        picked: list[Entry] = []
        need, context, models, providers = self.need, self.context, self.models, self.providers
        output, params = self.output, self.params
        testing_ok, deprecated_ok, tripped = self.testing_ok, self.deprecated_ok, self.tripped
        max_cost = math.inf if self.max_cost is None else self.max_cost
        max_latency = math.inf if self.max_latency is None else self.max_latency
        for e in source:
            if (
                e.caps & need != need
                or (params and e.refuses & params)
                or e.context_window < context
                or e.max_output < output
                or e.price > max_cost
                or (e.p50 is not None and e.p50 > max_latency)
                or (e.testing and not testing_ok)
                or (e.deprecated and not deprecated_ok)
                or (models is not None and e.name not in models)
                or (providers is not None and e.provider not in providers)
                or (skip and e.name in skip)
                or (tripped and (e.provider, e.name) in tripped and self.circuit_open(e))
            ):
                continue
            picked.append(e)
            if len(picked) >= k:
                break
        return picked

    def circuit_open(self, e: Entry) -> bool:
        """Whether its circuit refuses calls now (half-open with the probe free does not)."""
        if not self.tripped or (e.provider, e.name) not in self.tripped:
            return False
        assert self.board is not None
        return not self.board.available(e.provider, e.name, self.now)

    def circuit_wait(self, e: Entry) -> float:
        assert self.board is not None
        return self.board.retry_after(e.provider, e.name, self.now)

    def missing(self, e: Entry) -> list[str]:
        """The needed capabilities the model lacks, in the fixed order."""
        return [c for c in capability_order(self.needs) if not e.caps & capability_mask([c])]

    def describe(self, code: int, e: Entry) -> str:
        """Why the model failed filter `code`, for `route explain` and logs."""
        if code == STATUS:
            if e.deprecated:
                return "deprecated: served only when named"
            return "in testing: this key's policy does not allow testing models"
        if code == POLICY:
            return "not allowed by this key's policy"
        if code == PROVIDERS:
            return f"provider '{e.provider}' is not in route.providers"
        if code == CAPABILITY:
            return f"does not support {', '.join(self.missing(e))}"
        if code == REFUSED:
            refused = ", ".join(sorted(e.refuses & self.params))
            return f"provider type '{e.provider_type}' refuses {refused}"
        if code == OUTPUT:
            return f"output limit {e.max_output} tokens < {self.output} asked for"
        if code == CONTEXT:
            return f"context window {e.context_window} tokens < {self.context} needed"
        if code == COST:
            return f"blended price {money(e.price)}/Mtok over the cap {money(self.max_cost or 0)}"
        if code == LATENCY:
            return f"p50 {e.p50:.0f} ms over the cap {self.max_latency:.0f} ms"
        if code == CIRCUIT:
            assert self.board is not None
            return self.board.why_closed(e.provider, e.name, self.now)
        return "eligible"


def no_use_case(use_case: str, named_by_request: bool) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"No model serves use case '{use_case}'.",
        param="use_case" if named_by_request else "model",
    )


def diagnose(use_case: str, served: list[Entry], c: Constraints) -> GatewayError:
    """The error for a request no model of `use_case` could serve: the filter that removed the
    last models standing decides the class, the message and the parameter named."""
    explicit = c.request.use_case is not None
    codes = [(c.failure(e), e) for e in served]
    if not codes:
        return no_use_case(use_case, explicit)
    stage = max(code for code, _ in codes)
    last = [e for code, e in codes if code >= stage]
    where = f"No model for use case '{use_case}'"
    if stage in (STATUS, POLICY):
        # Models this key may not use are as good as absent: never reveal that they exist.
        return ModelNotFoundError(
            f"{where} exists or you do not have access to one.",
            param="use_case" if explicit else "model",
        )
    if stage == PROVIDERS:
        chosen = ", ".join(sorted(c.request_providers or ()))
        return InvalidRequestError(
            f"{where} is served by the providers in route.providers ({chosen}).",
            param="route.providers",
        )
    if stage == CAPABILITY:
        unmet = [
            n
            for n in capability_order(c.needs)
            if not any(e.caps & capability_mask([n]) for e in last)
        ]
        if unmet:
            return InvalidRequestError(
                f"{where} supports {unmet[0]}.", param=CAPABILITY_PARAMS.get(unmet[0])
            )
        needs = capability_order(c.needs)
        return InvalidRequestError(
            f"{where} supports {', '.join(needs)} together.",
            param=CAPABILITY_PARAMS.get(needs[0]),
        )
    if stage == REFUSED:
        param = min(p for e in last for p in e.refuses & c.params)
        return InvalidRequestError(
            f"{where} accepts '{param}': the provider types serving it refuse it.", param=param
        )
    if stage == OUTPUT:
        largest = max(e.max_output for e in last)
        return InvalidRequestError(
            f"{where} can write {c.output} tokens: the largest output limit is {largest} "
            f"({c.request.output_param}).",
            param=c.request.output_param,
        )
    if stage == CONTEXT:
        largest = max(e.context_window for e in last)
        return ContextLengthError(
            f"{where} has a context window of {c.context} tokens "
            f"(prompt {c.request.prompt_tokens} + max output {c.request.max_output_tokens or 0}; "
            f"the largest is {largest}).",
            param="messages",
        )
    if stage == COST:
        cheapest = money(min(e.price for e in last))
        from_request = c.request_cost is not None and c.request_cost == c.max_cost
        cap = money(c.max_cost or 0.0)
        limit = f"route.max_cost_per_mtok {cap}" if from_request else f"this key's limit {cap}"
        return InvalidRequestError(
            f"{where} fits {limit}/Mtok (blended 3:1 input:output; the cheapest is "
            f"{cheapest}/Mtok).",
            param="route.max_cost_per_mtok" if from_request else None,
        )
    if stage == LATENCY:
        fastest = min(e.p50 for e in last if e.p50 is not None)
        return InvalidRequestError(
            f"{where} has a measured p50 latency within route.max_latency_ms "
            f"{c.max_latency:.0f} ms (the fastest is {fastest:.0f} ms).",
            param="route.max_latency_ms",
        )
    wait = min(c.circuit_wait(e) for e in last)
    return ServiceUnavailableError(
        f"Every model for use case '{use_case}' that fits this request is unavailable "
        f"({c.describe(CIRCUIT, min(last, key=c.circuit_wait))}); retry after {wait:.0f} s.",
        retry_after=wait,
    )
