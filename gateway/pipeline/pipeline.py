"""The request pipeline: steps named in the config, in its order, minus those skipped per path."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib import import_module

from gateway.config import ConfigError, PipelineConfig
from gateway.errors import GatewayError, InternalError
from gateway.observability.logs import request_id_var
from gateway.observability.tracing import tracer_for
from gateway.pipeline.context import Endpoint, RequestContext, Services
from gateway.pipeline.step import MODEL_CALLS, Step

logger = logging.getLogger("llmgw.pipeline")

BUILTIN_STEPS: dict[str, str] = {
    "validate": "gateway.pipeline.steps.admission:Validate",
    "authenticate": "gateway.pipeline.steps.admission:Authenticate",
    "authorize": "gateway.pipeline.steps.admission:Authorize",
    "admit": "gateway.pipeline.steps.admission:Admit",
    "enrich": "gateway.pipeline.steps.serving:Enrich",
    "route": "gateway.pipeline.steps.serving:Route",
    "quota": "gateway.pipeline.steps.quota:Reserve",
    "invoke": "gateway.pipeline.steps.serving:Invoke",
    "observe": "gateway.pipeline.steps.observe:Observe",
    "meter": "gateway.pipeline.steps.metering:Meter",
    "audit": "gateway.pipeline.steps.metering:Audit",
}

# Health checks answer load balancers, which carry no key.
DEFAULT_SKIPS: dict[str, list[str]] = {
    "/health": ["authenticate", "authorize", "admit"],
    "/health/ready": ["authenticate", "authorize", "admit"],
}
# Steps that run before the request body is read: a caller without a key costs no memory.
GATE_STEPS = frozenset({"authenticate", "authorize"})
# The plan of every path with no `skip` entry of its own.
ANY_PATH = "*"

BodyReader = Callable[[], Awaitable[bytes]]


def load_step(spec: str, where: str) -> type[Step]:
    """A step class from a built-in name or `module:Class`."""
    target = BUILTIN_STEPS.get(spec, spec)
    module_name, _, class_name = target.partition(":")
    if not class_name:
        raise ConfigError(
            f"{where}: expected a built-in step ({', '.join(BUILTIN_STEPS)}) or 'module:Class', "
            f"got '{spec}'"
        )
    try:
        cls = getattr(import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{where}: cannot load step '{spec}': {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Step)):
        raise ConfigError(f"{where}: '{spec}' is not a subclass of gateway.pipeline.Step")
    return cls


class Pipeline:
    """Runs a request through its steps; builds each path's step list once."""

    def __init__(self, config: PipelineConfig, services: Services) -> None:
        self.steps: list[Step] = [
            load_step(spec, f"pipeline.steps[{i}]")(services) for i, spec in enumerate(config.steps)
        ]
        self.skip = {**DEFAULT_SKIPS, **config.skip}
        # Keyed by configured path or ANY_PATH, never by the raw path a client sent, so
        # `GET /v1/models/<random>` cannot grow it.
        self._plans: dict[tuple[str, str], tuple[Step, ...]] = {}
        self.tracer = tracer_for(services.config.observability.tracing)

    def plan(self, path: str, endpoint: Endpoint) -> tuple[Step, ...]:
        """The steps a request to `path` runs, in order."""
        route = path if path in self.skip else ANY_PATH
        key = (route, endpoint)
        plan = self._plans.get(key)
        if plan is None:
            skipped = set(self.skip.get(route, ()))
            if endpoint == "admin":
                skipped -= GATE_STEPS  # whatever the config says (it is refused at load, too)
            plan = tuple(s for s in self.steps if endpoint in s.endpoints and s.name not in skipped)
            self._plans[key] = plan
        return plan

    async def run(self, ctx: RequestContext, body: BodyReader | None = None) -> None:
        """Each step's `handle` in order; the first error stops the rest and is kept in ctx.

        `body` reads the request body; it is called once the gate steps (authenticate,
        authorize) have passed, right before the first step that may need it.
        """
        request_id_var.set(ctx.request_id)  # on every log record of this request
        tracer = self.tracer if ctx.endpoint in MODEL_CALLS else None
        if tracer is not None:
            ctx.trace = tracer.start(ctx)
        try:
            for step in self.plan(ctx.path, ctx.endpoint):
                if body is not None and step.name not in GATE_STEPS:
                    ctx.body = await body()
                    body = None
                if tracer is None:
                    await step.handle(ctx)
                    continue
                tracer.step_started(ctx, step.name)
                try:
                    await step.handle(ctx)
                except BaseException as error:
                    tracer.step_ended(ctx, step.name, error)
                    raise
                tracer.step_ended(ctx, step.name, None)
        except GatewayError as error:
            ctx.error, ctx.status = error, error.status_code
        except Exception:
            logger.exception("request %s failed inside the gateway", ctx.request_id)
            ctx.error = InternalError.for_request(ctx.request_id)
            ctx.status = 500

    async def finish(self, ctx: RequestContext) -> None:
        """Every step's `finish`; a failing recorder never fails the request."""
        for step in self.plan(ctx.path, ctx.endpoint):
            try:
                await step.finish(ctx)
            except Exception:
                logger.exception("step %s failed to finish request %s", step.name, ctx.request_id)
        if self.tracer is not None:
            self.tracer.end(ctx)
