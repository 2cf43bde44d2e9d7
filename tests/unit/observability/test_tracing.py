"""Traces to a real OTLP/HTTP receiver (protobuf at /v1/traces, decoded with
opentelemetry-proto): a span per request continuing the client's traceparent, the pipeline's
steps and each provider attempt as children, GenAI attributes, the request id on every span,
no bodies or keys. And JSON logs carrying the request id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from gateway.auth import hash_key
from gateway.config import parse_config
from gateway.observability.logs import JsonFormatter
from gateway.server.api import create_api
from gateway.server.local import LocalGateway, local_gateway
from tests.otlp import PARENT_ID, TRACE_ID, TRACEPARENT, Receiver, receiver

__all__ = ["receiver"]  # a fixture the tests here use

ADMIN_KEY = "sk-llmgw-test-admin-key-0123456789"
PROMPT = "the secret recipe is forty-two"


@pytest.fixture
def gateway(receiver: Receiver) -> Iterator[LocalGateway]:
    config = {
        "providers": [
            {"name": "sim", "type": "sim", "sim": {"output_tokens": 6}},
            {"name": "flaky", "type": "sim", "sim": {"failure_rate": 1.0}},
        ],
        "models": [
            {"name": "sim-fast", "provider": "sim"},
            {"name": "broken", "provider": "flaky", "fallbacks": ["sim-fast"]},
        ],
        "routing": {"retries": {"max_attempts": 1}},
        "observability": {"tracing": {"endpoint": receiver.url, "service_name": "llmgw-test"}},
    }
    gateway = local_gateway(parse_config(config), hash_key(ADMIN_KEY))
    yield gateway
    tracer = gateway.runtime.pipeline.tracer
    assert tracer is not None
    tracer.shutdown()


@pytest.fixture
async def http(gateway: LocalGateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_api(gateway.runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield client


async def test_a_request_is_a_trace_continuing_the_clients_traceparent(
    http: httpx.AsyncClient, gateway: LocalGateway, receiver: Receiver
) -> None:
    receiver.payloads.clear()
    headers = {
        "authorization": f"Bearer {ADMIN_KEY}",
        "traceparent": TRACEPARENT,
        "x-request-id": "req-trace-1",
    }
    body = {"model": "broken", "messages": [{"role": "user", "content": PROMPT}]}
    r = await http.post("/v1/chat/completions", json=body, headers=headers)
    assert r.status_code == 200
    tracer = gateway.runtime.pipeline.tracer
    assert tracer is not None
    tracer.provider.force_flush()

    assert set(receiver.paths) == {"/v1/traces"}
    spans = receiver.spans()
    assert spans and all(s["trace_id"] == TRACE_ID for s in spans)
    assert all(s["attributes"]["llmgw.request_id"] == "req-trace-1" for s in spans)
    assert {s["service"] for s in spans} == {"llmgw-test"}
    [root] = [s for s in spans if s["parent"] == PARENT_ID]
    assert root["name"] == "chat broken" and root["kind"] == 2  # SERVER
    usage = r.json()["usage"]
    assert (
        root["attributes"]
        | {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "broken",
            "gen_ai.response.model": "sim-fast",
            "gen_ai.provider.name": "sim",
            "gen_ai.usage.input_tokens": usage["prompt_tokens"],
            "gen_ai.usage.output_tokens": usage["completion_tokens"],
            "http.response.status_code": 200,
        }
        == root["attributes"]
    )
    steps = {s["name"]: s for s in spans if s["parent"] == root["span_id"]}
    assert {"authenticate", "validate", "route", "invoke", "observe"} <= set(steps)
    attempts = [s for s in spans if s["parent"] == steps["invoke"]["span_id"]]
    assert [(a["name"], a["kind"]) for a in attempts] == [("chat broken", 3), ("chat sim-fast", 3)]
    failed, served = attempts
    assert failed["attributes"]["gen_ai.provider.name"] == "flaky"
    assert failed["attributes"]["error.type"] and failed["status"] == 2  # ERROR
    assert "error.type" not in served["attributes"] and served["start"] >= failed["end"] - 10**6
    # Neither the prompt nor the key leaves in a span.
    raw = b"".join(receiver.payloads)
    assert PROMPT.encode() not in raw and ADMIN_KEY.encode() not in raw


async def test_a_refused_request_is_a_failed_span_and_no_traceparent_starts_a_trace(
    http: httpx.AsyncClient, gateway: LocalGateway, receiver: Receiver
) -> None:
    receiver.payloads.clear()
    body = {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}
    r = await http.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert r.status_code == 404
    gateway.runtime.pipeline.tracer.provider.force_flush()
    [root] = [s for s in receiver.spans() if s["kind"] == 2]
    assert root["parent"] == "" and root["status"] == 2
    assert root["attributes"]["error.type"] == "model_not_found"
    assert root["attributes"]["http.response.status_code"] == 404


def test_tracing_is_off_without_an_endpoint() -> None:
    gateway = local_gateway(parse_config({}), hash_key(ADMIN_KEY))
    assert gateway.runtime.pipeline.tracer is None


async def test_json_logs_carry_the_request_id_and_no_bodies_or_keys(
    http: httpx.AsyncClient,
) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(n) for n in ("gateway", "llmgw")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        body = {"model": "broken", "messages": [{"role": "user", "content": PROMPT}]}
        headers = {"authorization": f"Bearer {ADMIN_KEY}", "x-request-id": "req-logs-1"}
        assert (await http.post("/v1/chat/completions", json=body, headers=headers)).is_success
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines, "the failed attempt logs a warning"
    assert all(line["request_id"] == "req-logs-1" for line in lines)
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    [access] = [line for line in lines if line["logger"] == "llmgw.access"]
    assert access["model"] == "sim-fast" and access["status"] == 200
    assert access["attempts"] == 2 and access["output_tokens"] == 6
    assert PROMPT not in out.getvalue() and ADMIN_KEY not in out.getvalue()
