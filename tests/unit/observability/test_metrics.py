"""Metrics without Ray: the observe step's points for served, streamed, failed-over and
refused calls; circuit transitions; the catalogue's Prometheus names."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from gateway.auth import Principal, hash_key
from gateway.config import CircuitConfig, parse_config
from gateway.observability import catalogue
from gateway.observability.metrics import MemorySink, install, metrics
from gateway.routing import CircuitBoard
from gateway.server.api import create_api
from gateway.server.local import LocalGateway, local_gateway
from gateway.tenancy.access import Quota

ADMIN_KEY = "sk-llmgw-test-admin-key-0123456789"
TEAM_KEY = "sk-llmgw-team-tenant-key-0123456789"
LIMITED_KEY = "sk-llmgw-limited-tenant-key-012345678"
BASE = "http://gateway.test"
CONFIG = {
    "providers": [
        {"name": "sim", "type": "sim", "sim": {"seed": 3, "output_tokens": 12}},
        {"name": "flaky", "type": "sim", "sim": {"failure_rate": 1.0, "failure_statuses": [503]}},
    ],
    "models": [
        {
            "name": "sim-fast",
            "provider": "sim",
            "use_cases": ["chat"],
            "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        },
        {"name": "broken", "provider": "flaky", "use_cases": ["chat"], "fallbacks": ["sim-fast"]},
    ],
    "routing": {"retries": {"max_attempts": 1, "base_delay_s": 0.0}},
}
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def sink() -> Iterator[MemorySink]:
    sink = MemorySink()
    previous = metrics()
    install(sink)
    yield sink
    install(previous.sink)


@pytest.fixture
async def http(sink: MemorySink) -> AsyncIterator[httpx.AsyncClient]:
    principals = {
        hash_key(TEAM_KEY): Principal(key_id="key_team", tenant="team-a"),
        hash_key(LIMITED_KEY): Principal(
            key_id="key_lim",
            tenant="team-b",
            quotas=(Quota("tenant:team-b", "requests", "minute", 1),),
        ),
    }
    gateway: LocalGateway = local_gateway(
        parse_config(CONFIG), hash_key(ADMIN_KEY), principals=principals
    )
    transport = httpx.ASGITransport(app=create_api(gateway.runtime))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_a_served_call_counts_request_tokens_cost_and_latencies(
    http: httpx.AsyncClient, sink: MemorySink
) -> None:
    r = await http.post(
        "/v1/chat/completions",
        json={"model": "sim-fast", "messages": HELLO},
        headers=_auth(TEAM_KEY),
    )
    assert r.status_code == 200
    usage = r.json()["usage"]
    labels = {"tenant": "team-a", "gen_ai_request_model": "sim-fast", "gen_ai_provider_name": "sim"}
    assert (
        sink.total("llmgw.requests", **labels, http_response_status_code="200", endpoint="chat")
        == 1
    )
    tokens = dict(
        (p["gen_ai_token_type"], v) for p, v in sink.points("gen_ai.client.token.usage", **labels)
    )
    assert tokens == {"input": [usage["prompt_tokens"]], "output": [usage["completion_tokens"]]}
    exact = sink.total("llmgw.tokens", **labels, gen_ai_token_type="output")
    assert exact == usage["completion_tokens"]
    cost = usage["prompt_tokens"] * 1e-6 + usage["completion_tokens"] * 2e-6
    assert sink.total("llmgw.cost", **labels) == pytest.approx(cost)
    assert float(r.headers["x-llmgw-cost-usd"]) == pytest.approx(cost)
    for name in ("gen_ai.server.request.duration", "gen_ai.client.operation.duration"):
        assert sink.total(name, gen_ai_request_model="sim-fast", error_type="") == 1
    assert sink.total("llmgw.gateway.overhead", endpoint="chat") == 1
    assert sink.total("gen_ai.server.time_to_first_token") == 0  # not streamed


async def test_a_stream_records_time_to_first_token_and_per_output_token(
    http: httpx.AsyncClient, sink: MemorySink
) -> None:
    body = {"model": "sim-fast", "messages": HELLO, "stream": True}
    async with http.stream("POST", "/v1/chat/completions", json=body, headers=_auth(TEAM_KEY)) as r:
        assert r.status_code == 200
        async for _ in r.aiter_bytes():
            pass
    [(_, ttft)] = sink.points("gen_ai.server.time_to_first_token", gen_ai_request_model="sim-fast")
    [(_, tpot)] = sink.points("gen_ai.server.time_per_output_token", gen_ai_provider_name="sim")
    [(_, duration)] = sink.points("gen_ai.server.request.duration")
    assert 0 < ttft[0] <= duration[0]
    assert 0 <= tpot[0] < duration[0]


async def test_each_attempt_is_a_provider_call_and_the_request_names_the_model_that_served(
    http: httpx.AsyncClient, sink: MemorySink
) -> None:
    r = await http.post(
        "/v1/chat/completions", json={"model": "broken", "messages": HELLO}, headers=_auth(TEAM_KEY)
    )
    assert r.status_code == 200
    failed = sink.points("gen_ai.client.operation.duration", gen_ai_provider_name="flaky")
    assert [p["error_type"] for p, _ in failed] != [""] and len(failed) == 1
    assert sink.total("gen_ai.client.operation.duration", gen_ai_request_model="sim-fast") == 1
    assert sink.total("llmgw.requests", gen_ai_request_model="sim-fast", error_type="") == 1


async def test_limit_refusals_and_unknown_models_are_counted_with_bounded_labels(
    http: httpx.AsyncClient, sink: MemorySink
) -> None:
    body = {"model": "sim-fast", "messages": HELLO}
    assert (
        await http.post("/v1/chat/completions", json=body, headers=_auth(LIMITED_KEY))
    ).status_code == 200
    refused = await http.post("/v1/chat/completions", json=body, headers=_auth(LIMITED_KEY))
    assert refused.status_code == 429
    assert sink.total("llmgw.refusals", tenant="team-b", reason="rate_limit_exceeded") == 1
    assert sink.total("llmgw.requests", tenant="team-b", http_response_status_code="429") == 1
    missing = {"model": "no-such-model-x7", "messages": HELLO}
    assert (
        await http.post("/v1/chat/completions", json=missing, headers=_auth(TEAM_KEY))
    ).status_code == 404
    # The client's unknown model string never becomes a label value.
    assert not sink.points("llmgw.requests", gen_ai_request_model="no-such-model-x7")
    assert sink.total("llmgw.requests", error_type="model_not_found", gen_ai_request_model="") == 1


def test_circuit_transitions_set_the_gauge_and_count(sink: MemorySink) -> None:
    now = [0.0]
    board = CircuitBoard(CircuitConfig(failure_threshold=2, open_s=5), clock=lambda: now[0])
    breaker = board.get("sim", "sim-fast")
    for _ in range(2):
        breaker.record(False, permit=breaker.acquire())
    assert sink.points("llmgw.circuit.open", gen_ai_provider_name="sim")[0][1] == 1.0
    now[0] = 6.0
    breaker.record(True, permit=breaker.acquire())
    assert sink.points("llmgw.circuit.open", gen_ai_request_model="sim-fast")[0][1] == 0.0
    assert sink.total("llmgw.circuit.transitions", state="open") == 1
    assert sink.total("llmgw.circuit.transitions", state="closed") == 1


def test_catalogue_names_are_prometheus_spellings_of_the_genai_conventions() -> None:
    spellings = {spec.name: spec.prometheus_name for spec in catalogue.CATALOGUE}
    assert (
        spellings["gen_ai.server.request.duration"] == "ray_gen_ai_server_request_duration_seconds"
    )
    assert (
        spellings["gen_ai.server.time_to_first_token"]
        == "ray_gen_ai_server_time_to_first_token_seconds"
    )
    assert spellings["gen_ai.client.token.usage"] == "ray_gen_ai_client_token_usage"
    assert spellings["llmgw.requests"] == "ray_llmgw_requests_total"
    assert spellings["llmgw.cost"] == "ray_llmgw_cost_usd_total"
    assert "ray_gen_ai_client_token_usage_sum" in catalogue.exported_series()
    assert len(spellings) == len(catalogue.CATALOGUE)
