"""Provider health without Ray: probes against local protocol servers (fast, and failing when
the upstream is down), published in the registry snapshot, and routing skipping an unhealthy
provider before a client's call fails on it."""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Iterator

import httpx
import pytest

from gateway.auth import hash_key
from gateway.config import HealthConfig, ProviderConfig, parse_config
from gateway.observability.health import HEALTHY, UNHEALTHY, UNPROBED, HealthChecker
from gateway.observability.metrics import MemorySink, install, metrics
from gateway.providers import build_provider
from gateway.registry.snapshot import ProviderHealth
from gateway.server.api import create_api
from gateway.server.local import local_gateway
from tests.protocol_servers import AnthropicServer, OllamaServer, OpenAIServer

ADMIN_KEY = "sk-llmgw-test-admin-key-0123456789"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, object]]:
    started = {"openai": OpenAIServer(), "anthropic": AnthropicServer(), "ollama": OllamaServer()}
    for server in started.values():
        server.start()
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture
def sink() -> Iterator[MemorySink]:
    previous = metrics()
    sink = MemorySink()
    install(sink)
    yield sink
    install(previous.sink)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _providers(upstreams: dict, monkeypatch: pytest.MonkeyPatch) -> list[ProviderConfig]:
    monkeypatch.setenv("TEST_OPENAI_KEY", upstreams["openai"].api_key)
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", upstreams["anthropic"].api_key)
    return [
        ProviderConfig(
            name="openai",
            type="openai",
            base_url=f"{upstreams['openai'].url}/v1",
            api_key_env="TEST_OPENAI_KEY",
        ),
        ProviderConfig(
            name="anthropic",
            type="anthropic",
            base_url=upstreams["anthropic"].url,
            api_key_env="TEST_ANTHROPIC_KEY",
        ),
        ProviderConfig(name="ollama", type="ollama", base_url=upstreams["ollama"].url),
        ProviderConfig(name="sim", type="sim"),
        ProviderConfig(
            name="gone",
            type="openai",
            base_url=f"http://127.0.0.1:{_closed_port()}/v1",
            api_key_env="TEST_OPENAI_KEY",
        ),
    ]


async def test_probes_are_fast_against_healthy_upstreams_and_fail_on_a_dead_one(
    upstreams: dict, monkeypatch: pytest.MonkeyPatch, sink: MemorySink
) -> None:
    checker = HealthChecker(HealthConfig(timeout_s=2), build_provider)
    providers = _providers(upstreams, monkeypatch)
    rounds = [await checker.check(providers) for _ in range(6)]
    await checker.aclose()
    last = rounds[-1]
    assert {n: h.state for n, h in last.items()} == {
        "openai": HEALTHY,
        "anthropic": HEALTHY,
        "ollama": HEALTHY,
        "sim": UNPROBED,
        "gone": UNHEALTHY,
    }
    assert last["gone"].error == "service_unavailable"  # unreachable
    assert last["sim"].healthy and not last["gone"].healthy
    for name in ("openai", "anthropic", "ollama"):
        # The first round builds each SDK client and connects; the rest reuse them.
        latencies = [r[name].latency_ms for r in rounds[1:]]
        # Under 100 ms each on an idle machine (a few ms); a loaded shared CI box can stall
        # one probe, so the median bounds the typical one.
        assert statistics.median(latencies) < 100, (name, latencies)
    assert sink.points("llmgw.provider.up", gen_ai_provider_name="gone")[0][1] == 0.0
    assert sink.points("llmgw.provider.up", gen_ai_provider_name="openai")[0][1] == 1.0
    assert sink.total("llmgw.provider.probe.duration", outcome="ok") == 3 * 6
    assert not sink.points("llmgw.provider.up", gen_ai_provider_name="sim")


async def test_ollama_models_are_rediscovered(upstreams: dict) -> None:
    checker = HealthChecker(HealthConfig(), build_provider)
    ollama = ProviderConfig(name="ollama", type="ollama", base_url=upstreams["ollama"].url)
    found = await checker.installed([ollama, ProviderConfig(name="sim", type="sim")])
    await checker.aclose()
    assert found and all(m.provider == "ollama" for m in found)
    upstreams["ollama"].models["newly-pulled:latest"] = next(
        iter(upstreams["ollama"].models.values())
    )
    checker = HealthChecker(HealthConfig(), build_provider)
    again = await checker.installed([ollama])
    await checker.aclose()
    assert {m.upstream_id for m in again} - {m.upstream_id for m in found} == {
        "newly-pulled:latest"
    }


CONFIG = {
    "providers": [
        {"name": "primary", "type": "sim"},
        {"name": "backup", "type": "sim"},
    ],
    "models": [
        {"name": "first", "provider": "primary", "use_cases": ["chat"], "quality": 0.9,
         "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.1}},
        {"name": "second", "provider": "backup", "use_cases": ["chat"], "quality": 0.1,
         "price": {"input_per_mtok": 9, "output_per_mtok": 9}},
    ],
    "routing": {"strategy": "cost"},
}  # fmt: skip


async def test_routing_skips_an_unhealthy_provider_and_ready_reports_it() -> None:
    gateway = local_gateway(parse_config(CONFIG), hash_key(ADMIN_KEY))
    transport = httpx.ASGITransport(app=create_api(gateway.runtime))
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        before = await http.post("/v1/chat/completions", json=body, headers=auth)
        assert before.headers["x-llmgw-model"] == "first"  # the cheaper one

        now = time.time()
        down = ProviderHealth(UNHEALTHY, now, 3.2, "upstream_connection_error")
        assert gateway.registry.set_health(
            {"primary": down, "backup": ProviderHealth(HEALTHY, now, 1.0)}
        )
        after = await http.post("/v1/chat/completions", json=body, headers=auth)
        assert after.status_code == 200 and after.headers["x-llmgw-model"] == "second"
        named = await http.post(
            "/v1/chat/completions", json={**body, "model": "first"}, headers=auth
        )
        assert named.status_code == 503  # never sent to a provider known to be down
        ready = (await http.get("/health/ready")).json()
        assert ready["providers"] == {"primary": "unhealthy", "backup": "healthy"}

        assert gateway.registry.set_health({"primary": ProviderHealth(HEALTHY, now + 15, 1.1)})
        back = await http.post("/v1/chat/completions", json=body, headers=auth)
        assert back.headers["x-llmgw-model"] == "first"
