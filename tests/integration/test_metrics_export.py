"""Metrics on Ray Serve: calls through the gateway show up, with their labels, in one scrape of
the node's Ray metrics exporter (every replica's series: ingress, pools)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Deployed

pytestmark = pytest.mark.ray

KEY = "sk-llmgw-metrics-0123456789abcdef0"
HELLO = [{"role": "user", "content": "Hello"}]
CONFIG = {
    "providers": [
        {"name": "sim", "type": "sim", "sim": {"seed": 5, "output_tokens": 8}},
        {"name": "flaky", "type": "sim", "sim": {"failure_rate": 1.0, "failure_statuses": [503]}},
    ],
    "models": [
        {
            "name": "sim-fast",
            "provider": "sim",
            "price": {"input_per_mtok": 1, "output_per_mtok": 2},
        },
        {"name": "broken", "provider": "flaky", "fallbacks": ["sim-fast"]},
    ],
    "routing": {
        "retries": {"max_attempts": 1},
        "circuit": {"failure_threshold": 2, "open_s": 60},
    },
}

Series = list[tuple[str, dict[str, str], float]]


def scrape(port: int) -> Series:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def find(series: Series, name: str, **labels: str) -> list[float]:
    return [
        value
        for got, have, value in series
        if got == name and all(have.get(k) == v for k, v in labels.items())
    ]


@pytest.fixture(scope="module")
def gateway(
    serve_gateway: Callable[..., Deployed], monkeypatch_module: pytest.MonkeyPatch
) -> Deployed:
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", KEY)
    return serve_gateway(CONFIG)


def _tenant_key(gateway: Deployed, name: str, rpm: int) -> str:
    admin = {"authorization": f"Bearer {KEY}"}
    made = httpx.post(
        f"{gateway.url}/admin/tenants", json={"name": name, "limits": {"rpm": rpm}}, headers=admin
    )
    assert made.status_code == 201, made.text
    key = httpx.post(
        f"{gateway.url}/admin/keys", json={"tenant": name, "scopes": ["inference"]}, headers=admin
    )
    assert key.status_code == 201, key.text
    secret = key.json()["key"]
    deadline = time.monotonic() + 30
    while httpx.get(f"{gateway.url}/v1/models", headers=_auth(secret)).status_code != 200:
        assert time.monotonic() < deadline, "the key never reached the ingress"
        time.sleep(0.2)
    return secret


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_calls_reach_the_node_exporter_with_their_labels(
    gateway: Deployed, metrics_port: int
) -> None:
    key = _tenant_key(gateway, "team-metrics", rpm=4)
    url = f"{gateway.url}/v1/chat/completions"
    with httpx.Client(timeout=30, headers=_auth(key)) as http:
        output_tokens = 0
        served = http.post(url, json={"model": "sim-fast", "messages": HELLO})
        assert served.status_code == 200
        output_tokens += served.json()["usage"]["completion_tokens"]
        body = {
            "model": "sim-fast",
            "messages": HELLO,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with http.stream("POST", url, json=body) as streamed:
            assert streamed.status_code == 200
            events = [line for line in streamed.iter_lines() if line.startswith("data: {")]
        output_tokens += json.loads(events[-1][6:])["usage"]["completion_tokens"]
        for _ in range(2):  # fails over to sim-fast, and trips broken's circuit
            failed_over = http.post(url, json={"model": "broken", "messages": HELLO})
            assert failed_over.status_code == 200
            output_tokens += failed_over.json()["usage"]["completion_tokens"]
        refused = http.post(url, json={"model": "sim-fast", "messages": HELLO})
        assert refused.status_code == 429

    served = {
        "tenant": "team-metrics",
        "gen_ai_request_model": "sim-fast",
        "gen_ai_provider_name": "sim",
    }
    wanted: dict[str, tuple[str, dict[str, str]]] = {
        "requests": (
            "ray_llmgw_requests_total",
            {**served, "endpoint": "chat", "http_response_status_code": "200"},
        ),
        "refused": (
            "ray_llmgw_requests_total",
            {"tenant": "team-metrics", "http_response_status_code": "429"},
        ),
        "refusals": (
            "ray_llmgw_refusals_total",
            {"tenant": "team-metrics", "reason": "rate_limit_exceeded"},
        ),
        "input": ("ray_llmgw_tokens_total", {**served, "gen_ai_token_type": "input"}),
        "output": ("ray_llmgw_tokens_total", {**served, "gen_ai_token_type": "output"}),
        "output_requests": (
            "ray_gen_ai_client_token_usage_count",
            {**served, "gen_ai_token_type": "output"},
        ),
        "cost": ("ray_llmgw_cost_usd_total", served),
        "duration": (
            "ray_gen_ai_server_request_duration_seconds_count",
            {"gen_ai_request_model": "sim-fast"},
        ),
        "overhead": ("ray_llmgw_gateway_overhead_seconds_count", {"endpoint": "chat"}),
        "provider": (
            "ray_gen_ai_client_operation_duration_seconds_count",
            {"gen_ai_provider_name": "flaky"},
        ),
        "ttft": (
            "ray_gen_ai_server_time_to_first_token_seconds_count",
            {"gen_ai_request_model": "sim-fast"},
        ),
        "tpot": (
            "ray_gen_ai_server_time_per_output_token_seconds_count",
            {"gen_ai_provider_name": "sim"},
        ),
        "circuit": ("ray_llmgw_circuit_open", {"gen_ai_request_model": "broken"}),
        "pool": ("ray_llmgw_pool_queue_depth", {"pool": "sim"}),
    }
    deadline = time.monotonic() + 60  # Ray's exporter gathers every few seconds
    while True:
        series = scrape(metrics_port)
        missing = [
            what for what, (name, labels) in wanted.items() if not find(series, name, **labels)
        ]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not missing, f"not exported: {missing}"

    def values(what: str) -> list[float]:
        name, labels = wanted[what]
        return find(series, name, **labels)

    assert sum(values("requests")) == 4  # sim-fast served: one call, a stream, two fallbacks
    assert sum(values("refusals")) == 1
    assert sum(values("output")) == output_tokens
    assert sum(values("output_requests")) == 4
    assert max(values("circuit")) == 1.0
    assert sum(values("cost")) > 0
