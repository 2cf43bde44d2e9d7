"""Steps that record what happened, after the response: meter (usage, cost, stats) and audit."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from gateway.pipeline.context import RequestContext
from gateway.pipeline.invoker import Attempt
from gateway.pipeline.step import MODEL_CALLS, Step
from gateway.registry.stats import CallSample
from gateway.usage.records import AuditEvent, UsageRecord
from gateway.usage.redact import body_for_audit, redact


class Meter(Step):
    """A usage record for every model call, refused ones too (tenant, key, model, provider,
    route, attempts, latency split, tokens, cost priced from the registry entry that served
    it), and a latency sample per attempt for the registry's live statistics."""

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
        usage = ctx.usage
        if model is not None and usage is not None:
            ctx.cost_usd = model.price.cost(
                usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens
            )
        latency = ctx.elapsed_ms()
        if model is not None:
            recorder.sample(
                CallSample(
                    model=model.name,
                    provider=model.provider,
                    ok=ctx.error is None,
                    latency_ms=latency,
                    ttft_ms=ctx.ttft_ms,
                    at=now,
                )
            )
        principal = ctx.principal
        route = ctx.route_request
        attempts = ctx.invocation.attempts
        recorder.usage(
            UsageRecord(
                request_id=ctx.request_id,
                at=started_at(ctx),
                key_id=principal.key_id if principal else None,
                tenant=principal.tenant if principal else None,
                model=model.name if model else _last_tried(attempts),
                provider=model.provider if model else _last_provider(attempts),
                upstream=model.upstream_id if model else None,
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
                cached_tokens=usage.cached_tokens if usage else 0,
                cost_usd=ctx.cost_usd,
                latency_ms=round(latency, 3),
                ttft_ms=ctx.ttft_ms,
                status=ctx.status,
                error_code=ctx.error.code if ctx.error else None,
                stream=ctx.streaming,
                endpoint=ctx.endpoint,
                use_case=route.use_case if route else None,
                strategy=ctx.decision.strategy if ctx.decision else (route and route.strategy),
                attempts=len(attempts),
                fallbacks=fallbacks(attempts),
                provider_ms=round(ctx.upstream_ms, 3) if attempts else None,
                overhead_ms=round(ctx.overhead_ms(), 3),
                flags=list(ctx.flags) or None,
            )
        )


class Audit(Step):
    """Who did what, when, with which outcome: every model call and admin action, refused ones
    too. Admin actions carry what they changed (before and after); request and response
    bodies are kept only for tenants that opted in (`keep_bodies`), with secrets redacted.
    Headers are never kept, so neither is the caller's key."""

    name = "audit"
    endpoints = MODEL_CALLS | {"admin"}

    async def finish(self, ctx: RequestContext) -> None:
        principal = ctx.principal
        detail: dict[str, Any] = {}
        if ctx.invocation.attempts:
            detail["attempts"] = [
                {"model": a.model, "provider": a.provider, "error": a.error, "ms": round(a.ms, 2)}
                for a in ctx.invocation.attempts
            ]
        if ctx.error is not None:
            detail["error"] = ctx.error.code
            # What the provider said, redacted: for operators, never in the client's message.
            if ctx.error.upstream_detail:
                detail["upstream_detail"] = ctx.error.upstream_detail
        if ctx.endpoint in MODEL_CALLS:
            detail["stream"] = ctx.streaming
            if ctx.route_request is not None and ctx.route_request.use_case:
                detail["use_case"] = ctx.route_request.use_case
            if ctx.usage is not None:
                detail["tokens"] = {
                    "prompt": ctx.usage.prompt_tokens,
                    "completion": ctx.usage.completion_tokens,
                }
        if ctx.cost_usd:
            detail["cost_usd"] = ctx.cost_usd
        if ctx.flags:
            detail["flags"] = list(ctx.flags)
        if ctx.audit_detail:
            detail |= redact(ctx.audit_detail)
        if principal is not None and principal.keep_bodies:
            if (request := body_for_audit(ctx.body)) is not None:
                detail["request_body"] = request
            if ctx.completed is not None:
                detail["response_body"] = body_for_audit(ctx.completed.body)
        self.services.recorder.audit(
            AuditEvent(
                request_id=ctx.request_id,
                at=started_at(ctx),
                key_id=principal.key_id if principal else None,
                tenant=principal.tenant if principal else None,
                action=ctx.endpoint,
                path=ctx.path,
                status=ctx.status,
                model=ctx.model.name if ctx.model else None,
                detail=detail,
            )
        )


def started_at(ctx: RequestContext) -> datetime:
    """When the request arrived, as the store keeps times."""
    return datetime.fromtimestamp(ctx.started_at, UTC)


def fallbacks(attempts: list[Attempt]) -> int:
    """How many times a call moved on to another model (retries of one model do not count)."""
    return sum(1 for a, b in pairwise(attempts) if a.model != b.model)


def _last_tried(attempts: list[Attempt]) -> str | None:
    return attempts[-1].model if attempts else None


def _last_provider(attempts: list[Attempt]) -> str | None:
    return attempts[-1].provider if attempts else None
