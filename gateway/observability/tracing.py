"""OpenTelemetry traces, off unless `observability.tracing.endpoint` names an OTLP/HTTP receiver.

A request is one SERVER span, continuing the client's `traceparent`, named as GenAI spans are
(`chat sim-fast`); each pipeline step is a child span, and each provider attempt a CLIENT
span under the `invoke` step's. Every span carries the request id. Attributes follow
OpenTelemetry's GenAI conventions; bodies (prompts, completions) are never recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gateway.config import TracingConfig

if TYPE_CHECKING:
    from gateway.pipeline.context import RequestContext

log = logging.getLogger("llmgw.tracing")

REQUEST_ID = "llmgw.request_id"


class RequestTrace:
    """One request's spans: the request's own, and the open step span, if any."""

    __slots__ = ("context", "span", "step_spans")

    def __init__(self, span: Any, context: Any) -> None:
        self.span = span
        self.context = context  # an OpenTelemetry Context holding `span`
        self.step_spans: dict[str, Any] = {}


class Tracer:
    """Makes a request's spans; `None` from `tracer_for` when tracing is off."""

    def __init__(self, config: TracingConfig, exporter: Any = None) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=config.endpoint)
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": config.service_name}),
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
        )
        # Spans leave in batches, off the request path.
        self.provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
        self.tracer = self.provider.get_tracer("llmgw")
        self.propagator = TraceContextTextMapPropagator()

    # ------------------------------------------------------------------ request

    def start(self, ctx: RequestContext) -> RequestTrace:
        """The request's span, child of the client's `traceparent` if it sent one."""
        from opentelemetry import trace

        parent = self.propagator.extract(carrier=_lower(ctx.headers))
        span = self.tracer.start_span(
            ctx.endpoint,
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={REQUEST_ID: ctx.request_id, "gen_ai.operation.name": ctx.endpoint},
        )
        return RequestTrace(span, trace.set_span_in_context(span, parent))

    def step_started(self, ctx: RequestContext, name: str) -> None:
        request = ctx.trace
        if request is None:
            return
        request.step_spans[name] = self.tracer.start_span(
            name, context=request.context, attributes={REQUEST_ID: ctx.request_id}
        )

    def step_ended(self, ctx: RequestContext, name: str, error: BaseException | None) -> None:
        request = ctx.trace
        span = request.step_spans.get(name) if request is not None else None
        if span is None:
            return
        if error is not None:
            _failed(span, getattr(error, "code", None) or type(error).__name__)
        span.end()

    def end(self, ctx: RequestContext) -> None:
        """Name and dress the request's span with what the request became, add its provider
        attempts, and end it."""
        request = ctx.trace
        if request is None:
            return
        ctx.trace = None
        from opentelemetry import trace

        span = request.span
        requested = _requested_model(ctx)
        if requested:
            span.update_name(f"{ctx.endpoint} {requested}")
        attributes: dict[str, Any] = {"http.response.status_code": ctx.status}
        if requested:
            attributes["gen_ai.request.model"] = requested
        if ctx.model is not None:
            attributes["gen_ai.response.model"] = ctx.model.name
            attributes["gen_ai.provider.name"] = ctx.model.provider
        if ctx.usage is not None:
            attributes["gen_ai.usage.input_tokens"] = ctx.usage.prompt_tokens
            attributes["gen_ai.usage.output_tokens"] = ctx.usage.completion_tokens
        if ctx.principal is not None:
            attributes["llmgw.tenant"] = ctx.principal.tenant
        if ctx.decision is not None:
            attributes["llmgw.route.strategy"] = ctx.decision.strategy
        span.set_attributes(attributes)
        if ctx.error is not None:
            _failed(span, ctx.error.code or type(ctx.error).__name__)
        # Attempts are timed by the invoker; their spans are written with those times.
        invoke = request.step_spans.get("invoke")
        parent = trace.set_span_in_context(invoke) if invoke is not None else request.context
        offset_ns = time.time_ns() - time.perf_counter_ns()
        for attempt in ctx.invocation.attempts:
            started = getattr(attempt, "started", None)
            if started is None:
                continue
            start_ns = int(started * 1e9) + offset_ns
            child = self.tracer.start_span(
                f"{ctx.endpoint} {attempt.model}",
                context=parent,
                kind=trace.SpanKind.CLIENT,
                start_time=start_ns,
                attributes={
                    REQUEST_ID: ctx.request_id,
                    "gen_ai.operation.name": ctx.endpoint,
                    "gen_ai.provider.name": attempt.provider,
                    "gen_ai.request.model": attempt.model,
                },
            )
            if attempt.error is not None:
                _failed(child, attempt.error)
            child.end(end_time=start_ns + int(attempt.ms * 1e6))
        span.end()

    def shutdown(self) -> None:
        """Send what spans are buffered."""
        self.provider.shutdown()


def _failed(span: Any, error_type: str) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR))


def _requested_model(ctx: RequestContext) -> str | None:
    request = ctx.chat if ctx.chat is not None else ctx.embedding
    return getattr(request, "model", None)


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        "traceparent": headers.get("traceparent", ""),
        "tracestate": headers.get("tracestate", ""),
    }


def tracer_for(config: TracingConfig) -> Tracer | None:
    """A tracer exporting to the configured OTLP endpoint, or None when tracing is off."""
    if not config.endpoint:
        return None
    try:
        return Tracer(config)
    except ImportError as exc:
        log.error("tracing is configured but OpenTelemetry's SDK is missing: %s", exc)
        return None
