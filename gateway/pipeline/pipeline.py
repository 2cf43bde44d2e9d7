"""The request pipeline: steps named in the config, in its order, minus those skipped per path."""

from __future__ import annotations

import logging
from importlib import import_module

from gateway.config import ConfigError, PipelineConfig
from gateway.errors import GatewayError, InternalError
from gateway.pipeline.context import Endpoint, RequestContext, Services
from gateway.pipeline.step import Step

logger = logging.getLogger("llmgw.pipeline")

BUILTIN_STEPS: dict[str, str] = {
    "validate": "gateway.pipeline.steps.admission:Validate",
    "authenticate": "gateway.pipeline.steps.admission:Authenticate",
    "authorize": "gateway.pipeline.steps.admission:Authorize",
    "admit": "gateway.pipeline.steps.admission:Admit",
    "enrich": "gateway.pipeline.steps.serving:Enrich",
    "route": "gateway.pipeline.steps.serving:Route",
    "invoke": "gateway.pipeline.steps.serving:Invoke",
    "meter": "gateway.pipeline.steps.records:Meter",
    "audit": "gateway.pipeline.steps.records:Audit",
}

# Health checks answer load balancers, which carry no key.
DEFAULT_SKIPS: dict[str, list[str]] = {
    "/health": ["authenticate", "authorize", "admit"],
    "/health/ready": ["authenticate", "authorize", "admit"],
}


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
        self._plans: dict[tuple[str, str], tuple[Step, ...]] = {}

    def plan(self, path: str, endpoint: Endpoint) -> tuple[Step, ...]:
        key = (path, endpoint)
        plan = self._plans.get(key)
        if plan is None:
            skipped = set(self.skip.get(path, ()))
            plan = tuple(s for s in self.steps if endpoint in s.endpoints and s.name not in skipped)
            self._plans[key] = plan
        return plan

    async def run(self, ctx: RequestContext) -> None:
        """Each step's `handle` in order; the first error stops the rest and is kept in ctx."""
        try:
            for step in self.plan(ctx.path, ctx.endpoint):
                await step.handle(ctx)
        except GatewayError as error:
            ctx.error, ctx.status = error, error.status_code
        except Exception:
            logger.exception("request %s failed inside the gateway", ctx.request_id)
            ctx.error = InternalError(f"internal error (request id {ctx.request_id})")
            ctx.status = 500

    async def finish(self, ctx: RequestContext) -> None:
        """Every step's `finish`; a failing recorder never fails the request."""
        for step in self.plan(ctx.path, ctx.endpoint):
            try:
                await step.finish(ctx)
            except Exception:
                logger.exception("step %s failed to finish request %s", step.name, ctx.request_id)
