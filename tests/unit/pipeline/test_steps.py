"""Each pipeline step alone, and the pipeline's loading, ordering and per-path skips."""

from __future__ import annotations

import pytest

from gateway.auth import ADMIN, KeyRing, Principal, hash_key
from gateway.config import ConfigError, PipelineConfig, parse_config
from gateway.errors import (
    AuthenticationError,
    GatewayError,
    InvalidRequestError,
    PayloadTooLargeError,
    PermissionDeniedError,
)
from gateway.pipeline.context import RequestContext, Services
from gateway.pipeline.invoker import Attempt, Invoker
from gateway.pipeline.pipeline import Pipeline
from gateway.pipeline.step import Step
from gateway.pipeline.steps.admission import Admit, Authenticate, Authorize, Validate
from gateway.pipeline.steps.metering import Audit, Meter
from gateway.pipeline.steps.serving import Enrich, Route
from gateway.pipeline.upstream import LocalUpstream
from gateway.registry.registry import Registry
from gateway.routing import CircuitBoard
from gateway.server.local import MemoryRecorder
from gateway.wire import Usage

KEY = "sk-llmgw-steps-0123456789"
CONFIG = parse_config(
    {
        "providers": [{"name": "sim", "type": "sim"}],
        "models": [
            {
                "name": "cheap",
                "provider": "sim",
                "use_cases": ["chat", "summarization"],
                "price": {"input_per_mtok": 1.0, "output_per_mtok": 3.0},
            },
            {"name": "big", "provider": "sim", "use_cases": ["chat"], "quality": 0.9},
        ],
        "server": {"max_body_bytes": 2048, "max_messages": 3},
    }
)


@pytest.fixture
def services() -> Services:
    registry = Registry(version=1, providers=CONFIG.providers, models=CONFIG.models)
    return Services(
        config=CONFIG,
        snapshot=registry.snapshot,
        keys=KeyRing(hash_key(KEY)),
        invoker=Invoker(LocalUpstream(), CONFIG.routing, CircuitBoard(CONFIG.routing.circuit)),
        recorder=MemoryRecorder(registry),
    )


def chat(body: bytes, **headers: str) -> RequestContext:
    return RequestContext(endpoint="chat", path="/v1/chat/completions", headers=headers, body=body)


HELLO = b'{"model": "cheap", "messages": [{"role": "user", "content": "hi"}]}'


async def test_validate_parses_a_good_body(services: Services) -> None:
    ctx = chat(HELLO)
    await Validate(services).handle(ctx)
    assert ctx.chat is not None and ctx.chat.model == "cheap"


@pytest.mark.parametrize(
    ("body", "error", "param"),
    [
        (b"x" * 4096, PayloadTooLargeError, None),
        (b"{", InvalidRequestError, None),
        (b'{"model": "cheap"}', InvalidRequestError, "messages"),
        (b'{"model": "cheap", "messages": [], "stream": true}', InvalidRequestError, "messages"),
        (
            b'{"model": "cheap", "messages": [{"role": "user", "content": "a"}], "n": 0}',
            InvalidRequestError,
            "n",
        ),
        (
            b'{"model": "c", "messages": [{"role": "tool", "content": "a"}]}',
            InvalidRequestError,
            "messages[0].tool_call_id",
        ),
        (
            b'{"model": "c", "messages": [{"role": "user", "content": "a"}], '
            b'"stream_options": {"include_usage": true}}',
            InvalidRequestError,
            "stream_options",
        ),
    ],
)
async def test_validate_names_what_is_wrong(
    services: Services, body: bytes, error: type[GatewayError], param: str | None
) -> None:
    with pytest.raises(error) as info:
        await Validate(services).handle(chat(body))
    assert info.value.param == param


async def test_validate_limits_message_count(services: Services) -> None:
    messages = b",".join([b'{"role": "user", "content": "a"}'] * 4)
    with pytest.raises(InvalidRequestError) as info:
        await Validate(services).handle(chat(b'{"model": "c", "messages": [' + messages + b"]}"))
    assert info.value.param == "messages" and "at most 3" in info.value.message


async def test_authenticate(services: Services) -> None:
    step = Authenticate(services)
    ctx = chat(HELLO, authorization=f"Bearer {KEY}")
    await step.handle(ctx)
    assert ctx.principal is ADMIN
    for header in ({}, {"authorization": "Basic abc"}, {"authorization": "Bearer sk-nope-123456"}):
        with pytest.raises(AuthenticationError) as info:
            await step.handle(chat(HELLO, **header))
        assert info.value.status_code == 401


async def test_authorize_checks_the_endpoint_scope(services: Services) -> None:
    step = Authorize(services)
    ctx = chat(HELLO)
    ctx.principal = Principal(key_id="k1", tenant="t", scopes=frozenset({"usage:read"}))
    with pytest.raises(PermissionDeniedError):
        await step.handle(ctx)
    ctx.principal = Principal(key_id="k1", tenant="t", scopes=frozenset({"inference"}))
    await step.handle(ctx)


async def test_wildcard_scope_never_grants_admin(services: Services) -> None:
    step = Authorize(services)
    ctx = RequestContext(endpoint="admin", path="/admin/models", headers={})
    ctx.principal = Principal(key_id="k1", tenant="t", scopes=frozenset({"*"}))
    with pytest.raises(PermissionDeniedError):
        await step.handle(ctx)
    usage = RequestContext(endpoint="admin", path="/admin/usage", headers={})
    usage.principal = Principal(key_id="k1", tenant="t", scopes=frozenset({"usage:read"}))
    await step.handle(usage)
    ctx.principal = Principal(key_id="k1", tenant="t", scopes=frozenset({"admin"}))
    await step.handle(ctx)


async def test_enrich_reads_use_case_and_strategy(services: Services) -> None:
    body = b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "stream": true}'
    ctx = chat(body, **{"x-llmgw-use-case": "summarization", "x-llmgw-strategy": "cost"})
    await Validate(services).handle(ctx)
    await Enrich(services).handle(ctx)
    request = ctx.route_request
    assert request.use_case == "summarization" and request.strategy == "cost"
    assert "streaming" in request.needs and request.prompt_tokens > 0
    bad = chat(HELLO, **{"x-llmgw-use-case": "poetry"})
    await Validate(services).handle(bad)
    with pytest.raises(InvalidRequestError) as info:
        await Enrich(services).handle(bad)
    assert info.value.param == "x-llmgw-use-case"


async def test_route_orders_candidates(services: Services) -> None:
    body = b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}'
    ctx = chat(body)
    await Validate(services).handle(ctx)
    await Enrich(services).handle(ctx)
    await Route(services).handle(ctx)
    assert ctx.decision.names()[0] in {"cheap", "big"} and len(ctx.decision.candidates) == 2


async def test_meter_prices_from_the_serving_entry(services: Services) -> None:
    ctx = chat(HELLO)
    ctx.principal = ADMIN
    ctx.invocation.model = services.snapshot().models["cheap"]
    ctx.invocation.attempts = [Attempt("big", "sim", "service_unavailable", 5.0)]
    ctx.usage = Usage.of(1_000_000, 1_000_000)
    await Meter(services).finish(ctx)
    record = services.recorder.usages[-1]
    assert record.cost_usd == pytest.approx(4.0) and record.model == "cheap"
    assert [s.ok for s in services.recorder.samples] == [False, True]


async def test_audit_records_refusals(services: Services) -> None:
    ctx = chat(HELLO)
    ctx.error, ctx.status = AuthenticationError("no"), 401
    await Audit(services).finish(ctx)
    event = services.recorder.audits[-1]
    assert event.status == 401 and event.detail["error"] == "invalid_api_key"


class Stamp(Step):
    """A custom step, as a user would add one by naming its class in the config."""

    name = "stamp"

    async def handle(self, ctx: RequestContext) -> None:
        ctx.request_id = "stamped"


async def test_custom_step_by_class_name_and_skips(services: Services) -> None:
    config = PipelineConfig(
        steps=["authenticate", "tests.unit.pipeline.test_steps:Stamp", "validate"],
        skip={"/v1/chat/completions": ["authenticate"]},
    )
    pipeline = Pipeline(config, services)
    ctx = chat(HELLO)
    await pipeline.run(ctx)
    assert ctx.error is None and ctx.request_id == "stamped"
    assert [s.name for s in pipeline.plan("/health", "health")] == []


@pytest.mark.parametrize("spec", ["nonsense", "no.such.module:Step", "gateway.errors:GatewayError"])
def test_bad_step_names_fail_at_start(services: Services, spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        Pipeline(PipelineConfig(steps=["validate", spec]), services)
    assert "pipeline.steps[1]" in str(info.value)


async def test_a_failing_step_becomes_an_openai_error_not_a_crash(services: Services) -> None:
    class Boom(Step):
        name = "boom"

        async def handle(self, ctx: RequestContext) -> None:
            raise RuntimeError("secret detail")

    pipeline = Pipeline(PipelineConfig(steps=["validate"]), services)
    pipeline.steps.append(Boom(services))
    ctx = chat(HELLO)
    await pipeline.run(ctx)
    assert ctx.status == 500 and "secret" not in ctx.error.message


async def test_admit_queues_past_capacity_then_refuses(services: Services) -> None:
    import asyncio
    import gc

    services.config = services.config.model_copy(
        update={
            "server": services.config.server.model_copy(
                update={"max_concurrent_calls": 1, "queue_timeout_s": 0.2}
            )
        }
    )
    step = Admit(services)
    first = chat(HELLO)
    await step.handle(first)
    second = chat(HELLO)
    waiting = asyncio.create_task(step.handle(second))
    await asyncio.sleep(0.05)
    assert not waiting.done(), "the second call waits for the first one's slot"
    await step.finish(first)
    await asyncio.wait_for(waiting, 1)
    with pytest.raises(GatewayError) as info:
        await step.handle(chat(HELLO))
    assert info.value.status_code == 503 and info.value.code == "gateway_at_capacity"
    # A context dropped without `finish` (its client left early) still frees its slot.
    del second
    gc.collect()
    third = chat(HELLO)
    await asyncio.wait_for(step.handle(third), 1)
    await step.finish(third)
