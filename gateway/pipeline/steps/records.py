"""Steps that record what happened, after the response: meter (usage, cost, stats) and audit."""

from __future__ import annotations

import time

from gateway.pipeline.context import RequestContext
from gateway.pipeline.step import MODEL_CALLS, Step
from gateway.registry.stats import CallSample
from gateway.store.records import AuditEvent, UsageRecord


class Meter(Step):
    """Usage and cost of the call, priced from the registry entry that served it, and a
    latency sample per attempt for the registry's live statistics."""

    name = "meter"

    async def finish(self, ctx: RequestContext) -> None:
        now = time.time()
        recorder = self.services.recorder
        for attempt in ctx.invocation.attempts:
            if attempt.error is not None:
                recorder.sample(
                    CallSample(
                        model=attempt.model,
                        provider=attempt.provider,
                        ok=False,
                        latency_ms=attempt.ms,
                        ttft_ms=None,
                        at=now,
                    )
                )
        model = ctx.model
        if model is None:
            return
        usage = ctx.usage
        if usage is not None:
            ctx.cost_usd = model.price.cost(
                usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens
            )
        ok = ctx.error is None
        latency = ctx.elapsed_ms()
        recorder.sample(
            CallSample(
                model=model.name,
                provider=model.provider,
                ok=ok,
                latency_ms=latency,
                ttft_ms=ctx.ttft_ms,
                at=now,
            )
        )
        principal = ctx.principal
        recorder.usage(
            UsageRecord(
                request_id=ctx.request_id,
                key_id=principal.key_id if principal else None,
                tenant=principal.tenant if principal else None,
                model=model.name,
                provider=model.provider,
                upstream=model.upstream_id,
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
                cached_tokens=usage.cached_tokens if usage else 0,
                cost_usd=ctx.cost_usd,
                latency_ms=latency,
                ttft_ms=ctx.ttft_ms,
                status=ctx.status,
                error_code=ctx.error.code if ctx.error else None,
                stream=ctx.streaming,
            )
        )


class Audit(Step):
    """Who did what, with which outcome: every model call and admin action, refused ones too."""

    name = "audit"
    endpoints = MODEL_CALLS | {"admin"}

    async def finish(self, ctx: RequestContext) -> None:
        principal = ctx.principal
        detail: dict[str, object] = {}
        if ctx.invocation.attempts:
            detail["attempts"] = [
                {"model": a.model, "provider": a.provider, "error": a.error, "ms": round(a.ms, 2)}
                for a in ctx.invocation.attempts
            ]
        if ctx.error is not None:
            detail["error"] = ctx.error.code
        if ctx.cost_usd:
            detail["cost_usd"] = ctx.cost_usd
        self.services.recorder.audit(
            AuditEvent(
                request_id=ctx.request_id,
                key_id=principal.key_id if principal else None,
                tenant=principal.tenant if principal else None,
                action=ctx.endpoint,
                path=ctx.path,
                status=ctx.status,
                model=ctx.model.name if ctx.model else None,
                detail=detail,
            )
        )
