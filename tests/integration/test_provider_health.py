"""Provider health on Ray Serve: the registry actor probes on its schedule (Bedrock's probe
through boto3's control plane), and the results reach /health/ready, /admin/status (state,
last probe, latency), routing and the metrics; Ollama's newly installed models appear without
a restart."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.integration.conftest import Deployed
from tests.integration.test_metrics_export import find, scrape
from tests.protocol_servers import BedrockServer, OllamaServer

pytestmark = pytest.mark.ray

# Ray workers inherit the environment the session's Ray starts with: boto3's credentials are
# set at collection (another module may have set its own; the server checks whatever is set).
os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIDLLMGWHEALTH")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "llmgw-health-secret")

KEY = "sk-llmgw-health-0123456789abcdef00"
ADMIN = {"authorization": f"Bearer {KEY}"}
HELLO = [{"role": "user", "content": "Hello"}]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ollama() -> Iterator[OllamaServer]:
    server = OllamaServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bedrock() -> Iterator[BedrockServer]:
    server = BedrockServer(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(
    serve_gateway: Callable[..., Deployed],
    monkeypatch_module: pytest.MonkeyPatch,
    ollama: OllamaServer,
    bedrock: BedrockServer,
) -> Deployed:
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", KEY)
    return serve_gateway(
        {
            "providers": [
                {"name": "sim", "type": "sim"},
                {"name": "local", "type": "ollama", "base_url": ollama.url},
                {"name": "gone", "type": "ollama", "base_url": f"http://127.0.0.1:{_closed_port()}"},
                {"name": "aws", "type": "bedrock", "region": "us-east-1",
                 "endpoint_url": bedrock.url},
            ],
            "models": [
                {"name": "sim-fast", "provider": "sim", "price": {"input_per_mtok": 9}},
                {"name": "gone-model", "provider": "gone", "upstream": "llama3.2",
                 "price": {"input_per_mtok": 0.01}, "fallbacks": ["sim-fast"]},
            ],
            "routing": {"strategy": "cost"},
            "observability": {"health": {"interval_s": 1, "timeout_s": 2}},
        }
    )  # fmt: skip


def _until(check: Callable[[], object], what: str, timeout_s: float = 60) -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_probes_reach_ready_status_routing_and_metrics(
    gateway: Deployed, metrics_port: int, bedrock: BedrockServer
) -> None:
    wanted = {"sim": "unprobed", "local": "healthy", "gone": "unhealthy", "aws": "healthy"}

    def ready() -> bool:
        body = httpx.get(f"{gateway.url}/health/ready").json()
        return body.get("providers") == wanted

    _until(ready, "every provider's probe in /health/ready")
    status = httpx.get(f"{gateway.url}/admin/status", headers=ADMIN).json()
    health = status["health"]
    assert {name: h["state"] for name, h in health.items()} == wanted
    # A measured probe (not a placeholder), within the probe's 2 s timeout: its size is the
    # machine's business, not this test's.
    assert 0 < health["local"]["latency_ms"] < 2000
    assert time.time() - health["local"]["checked_at"] < 10  # probed on the 1 s schedule
    assert health["gone"]["error"]
    # Bedrock's probe: boto3's signed ListFoundationModels, which the server verified.
    assert any(r.path == "/foundation-models" for r in bedrock.received)
    assert time.time() - health["aws"]["checked_at"] < 10

    # The cheapest configured model sits on the dead provider: `auto` never calls it.
    body = {"model": "auto", "messages": HELLO}
    served = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=ADMIN)
    assert served.status_code == 200 and served.headers["x-llmgw-provider"] != "gone"

    def exported() -> list[float]:
        series = scrape(metrics_port)
        up = find(series, "ray_llmgw_provider_up", gen_ai_provider_name="local")
        down = find(series, "ray_llmgw_provider_up", gen_ai_provider_name="gone")
        return up and down and [max(up), max(down)]

    assert _until(exported, "llmgw_provider_up for both ollamas") == [1.0, 0.0]
    calls = "ray_gen_ai_client_operation_duration_seconds_count"
    assert not find(scrape(metrics_port), calls, gen_ai_provider_name="gone")


def test_ollamas_newly_installed_model_is_discovered(
    gateway: Deployed, ollama: OllamaServer
) -> None:
    ollama.models["qwen3:4b"] = ("qwen3", 40960, ["completion", "tools"])

    def listed() -> bool:
        models = httpx.get(f"{gateway.url}/v1/models", headers=ADMIN).json()["data"]
        return any("qwen3" in m["id"] for m in models)

    _until(listed, "the new Ollama model in /v1/models", timeout_s=30)
