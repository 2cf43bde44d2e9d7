"""What a routing decision is asked: the request's needs and hints, and the tenant's policy."""

from __future__ import annotations

from dataclasses import dataclass

AUTO = "auto"


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """What one tenant's keys may route to, and how they like it routed.

    Model names here are canonical names (not aliases); None means no restriction.
    """

    allowed_models: frozenset[str] | None = None
    allowed_providers: frozenset[str] | None = None
    preferred_providers: tuple[str, ...] = ()
    preferred_models: tuple[str, ...] = ()
    allow_testing: bool = False
    default_strategy: str | None = None
    min_quality: float | None = None  # the quality strategy's threshold (published lower bound)
    max_cost_per_mtok: float | None = None

    def permits(self, model: str, provider: str) -> bool:
        """Whether this tenant may use `model` (a canonical name) at `provider`."""
        if self.allowed_models is not None and model not in self.allowed_models:
            return False
        return self.allowed_providers is None or provider in self.allowed_providers


OPEN_POLICY = TenantPolicy()


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """One request as routing sees it.

    `model` is a model name, an alias, `provider/upstream`, or `auto` (the gateway picks).
    `needs` are capabilities: chat, streaming, tools, vision, json_mode, embeddings; `params`
    the request parameters it uses that some provider types refuse (n, temperature, ...).
    `providers` and `prefer` are the request's own route hints; `prefer` holds provider or model
    names. `strategy` None means the policy's default, then the config's.
    """

    model: str
    use_case: str | None = None
    strategy: str | None = None
    needs: frozenset[str] = frozenset()
    params: frozenset[str] = frozenset()
    prompt_tokens: int = 0
    max_output_tokens: int | None = None
    output_param: str = "max_tokens"  # which request field set max_output_tokens
    max_cost_per_mtok: float | None = None
    max_latency_ms: float | None = None
    min_quality: float | None = None
    providers: frozenset[str] | None = None
    prefer: tuple[str, ...] = ()
    fallback: bool = True
    policy: TenantPolicy = OPEN_POLICY
