"""Steps that serve a model call: enrich (what the request needs), route, invoke."""

from __future__ import annotations

from gateway.config import USE_CASES
from gateway.errors import InvalidRequestError, PermissionDeniedError
from gateway.pipeline.context import RequestContext
from gateway.pipeline.step import Step
from gateway.providers.support import EMBEDDING_NEEDS, needs_of
from gateway.routing import STRATEGIES, RouteRequest, TenantPolicy, plan
from gateway.tokens import count_prompt_tokens, count_tokens
from gateway.wire import RouteHints

DEFAULT_POLICY = TenantPolicy()


def _choice(value: str | None, allowed: tuple[str, ...], what: str, source: str) -> str | None:
    if value is None or value in allowed:
        return value
    raise InvalidRequestError(
        f"Invalid {what} '{value}' in {source}: expected one of {', '.join(allowed)}",
        param=source,
    )


class Enrich(Step):
    """Work out what the request needs from a model: use case, strategy, capabilities, size."""

    name = "enrich"

    async def handle(self, ctx: RequestContext) -> None:
        ctx.snapshot = self.services.snapshot()
        body = ctx.chat or ctx.embedding
        assert body is not None, "enrich runs after validate"
        use_case = body.use_case or _choice(
            ctx.headers.get("x-llmgw-use-case"), USE_CASES, "use case", "x-llmgw-use-case"
        )
        if ctx.embedding is not None:
            _choice(use_case, USE_CASES, "use case", "use_case")
        allowed = ctx.principal.allowed_use_cases if ctx.principal else None
        if allowed is not None and (use_case or "chat") not in allowed:
            raise PermissionDeniedError(
                f"tenant '{ctx.principal.tenant}' may not use the '{use_case or 'chat'}' use case",
                param="use_case",
            )
        hints = body.route or RouteHints()
        strategy = hints.strategy or _choice(
            ctx.headers.get("x-llmgw-strategy"), STRATEGIES, "strategy", "x-llmgw-strategy"
        )
        if ctx.chat is not None:
            needs = needs_of(ctx.chat)
            prompt_tokens = count_prompt_tokens(ctx.chat)
            max_output = ctx.chat.output_limit()
            output_param = (
                "max_completion_tokens" if ctx.chat.max_completion_tokens else "max_tokens"
            )
        else:
            needs = EMBEDDING_NEEDS
            prompt_tokens = sum(count_tokens(t) for t in ctx.embedding.texts())
            max_output = None
            output_param = "max_tokens"
        ctx.route_request = RouteRequest(
            model=body.model,
            use_case=use_case,
            strategy=strategy,
            needs=needs.capabilities,
            params=needs.params,
            prompt_tokens=prompt_tokens,
            max_output_tokens=max_output,
            output_param=output_param,
            max_cost_per_mtok=hints.max_cost_per_mtok,
            max_latency_ms=hints.max_latency_ms,
            min_quality=hints.min_quality,
            providers=frozenset(hints.providers) if hints.providers else None,
            prefer=tuple(hints.prefer or ()),
            fallback=hints.fallback,
            policy=ctx.principal.policy if ctx.principal else DEFAULT_POLICY,
        )


class Route(Step):
    """The ordered candidates (fallback chain) for the request, from the pushed snapshot."""

    name = "route"

    async def handle(self, ctx: RequestContext) -> None:
        assert ctx.route_request is not None and ctx.snapshot is not None
        self.services.invoker.circuits.follow_health(ctx.snapshot)  # skip unhealthy providers
        ctx.decision = plan(
            ctx.route_request,
            ctx.snapshot,
            self.services.config.routing,
            self.services.invoker.circuits,
        )


def _failed_upstream_ms(ctx: RequestContext) -> float:
    # Time spent on attempts that failed was spent waiting on providers too.
    return sum(a.ms for a in ctx.invocation.attempts if a.error is not None)


class Invoke(Step):
    """Call the candidates in order, with retries, fallback, circuit breakers and timeouts."""

    name = "invoke"

    async def handle(self, ctx: RequestContext) -> None:
        assert ctx.decision is not None and ctx.snapshot is not None
        invoker = self.services.invoker
        if ctx.streaming:
            # The version the route was planned on, so the pool resolves the same configs.
            # The request crosses as the parsed object re-dumped, never the client's bytes: a
            # custom step may have changed it (redaction, defaults) after validation.
            ctx.stream = await invoker.stream(
                ctx.chat,
                ctx.decision,
                ctx.snapshot.providers,
                ctx.invocation,
                version=ctx.snapshot.version,
            )
            ctx.upstream_ms = ctx.stream.head.upstream_ms + _failed_upstream_ms(ctx)
            ctx.ttft_ms = ctx.stream.head.upstream_ms
            return
        request = ctx.chat if ctx.chat is not None else ctx.embedding
        ctx.completed = await invoker.complete(
            request,
            ctx.decision,
            ctx.snapshot.providers,
            ctx.invocation,
            embeddings=ctx.embedding is not None,
            version=ctx.snapshot.version,
        )
        ctx.upstream_ms = ctx.completed.upstream_ms + _failed_upstream_ms(ctx)
        ctx.usage = ctx.completed.usage
