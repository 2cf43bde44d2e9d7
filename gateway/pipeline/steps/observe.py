"""The observe step: each model call's metrics (requests, tokens, cost, latencies, refusals).

It sits right after `invoke` in the default pipeline, so its `handle` runs the moment a
stream's first content is ready (its time to first token); `finish` records the rest once
the response is done, refused requests included.
"""

from __future__ import annotations

import logging

from gateway.observability.metrics import metrics
from gateway.pipeline.context import RequestContext
from gateway.pipeline.step import Step

FIRST_TOKEN = "first_token_ms"

# One line per model call (the request id comes with it); never a body, never a key.
access_log = logging.getLogger("llmgw.access")


def _called(ctx: RequestContext) -> tuple[str, str]:
    """The registry names of the model and provider that served (or were last tried): never
    the client's raw model string, whose values are unbounded."""
    if ctx.model is not None:
        return ctx.model.name, ctx.model.provider
    if ctx.invocation.attempts:
        last = ctx.invocation.attempts[-1]
        return last.model, last.provider
    return "", ""


class Observe(Step):
    """Records each model call through `gateway.observability.metrics`."""

    name = "observe"

    async def handle(self, ctx: RequestContext) -> None:
        if ctx.stream is not None:
            ctx.marks[FIRST_TOKEN] = ctx.elapsed_ms()

    async def finish(self, ctx: RequestContext) -> None:
        m = metrics()
        elapsed_ms = ctx.elapsed_ms()
        model, provider = _called(ctx)
        tenant = ctx.principal.tenant if ctx.principal else ""
        error = ctx.error.code or type(ctx.error).__name__ if ctx.error is not None else ""
        for attempt in ctx.invocation.attempts:
            m.attempt(
                endpoint=ctx.endpoint,
                model=attempt.model,
                provider=attempt.provider,
                error=attempt.error or "",
                seconds=attempt.ms / 1000,
            )
        m.request(
            tenant=tenant,
            endpoint=ctx.endpoint,
            model=model,
            provider=provider,
            status=ctx.status,
            error=error,
            duration_s=elapsed_ms / 1000,
            overhead_s=ctx.overhead_ms() / 1000,
        )
        access_log.info(
            "%s %s %d",
            ctx.endpoint,
            model or "-",
            ctx.status,
            extra={
                "tenant": tenant or None,
                "model": model or None,
                "provider": provider or None,
                "status": ctx.status,
                "error": error or None,
                "attempts": len(ctx.invocation.attempts),
                "duration_ms": round(elapsed_ms, 2),
                "overhead_ms": round(ctx.overhead_ms(), 2),
                "input_tokens": ctx.usage.prompt_tokens if ctx.usage else None,
                "output_tokens": ctx.usage.completion_tokens if ctx.usage else None,
                "stream": ctx.streaming,
            },
        )
        served = ctx.model
        if served is not None and ctx.usage is not None:
            u = ctx.usage
            m.usage(
                tenant=tenant,
                endpoint=ctx.endpoint,
                model=model,
                provider=provider,
                input_tokens=u.prompt_tokens,
                output_tokens=u.completion_tokens,
                cached_tokens=u.cached_tokens,
                cost_usd=served.price.cost(u.prompt_tokens, u.completion_tokens, u.cached_tokens),
            )
        first = ctx.marks.get(FIRST_TOKEN)
        if first is not None and served is not None:
            m.first_token(
                endpoint=ctx.endpoint, model=model, provider=provider, seconds=first / 1000
            )
            outputs = ctx.usage.completion_tokens if ctx.usage is not None else 0
            if ctx.error is None and outputs > 1:
                m.per_output_token(
                    endpoint=ctx.endpoint,
                    model=model,
                    provider=provider,
                    seconds=(elapsed_ms - first) / 1000 / (outputs - 1),
                )
