"""The gateway on Ray Serve: pools behind handles, streaming, timeouts, disconnects, records."""

from __future__ import annotations

import time
from collections.abc import Callable

import openai
import pytest
from ray import serve

from tests.integration.conftest import Deployed, hang_up_after_first_token, usage_status

pytestmark = pytest.mark.ray

KEY = "sk-llmgw-integration-0123456789abcdef"
HELLO = [{"role": "user", "content": "Hello"}]

CONFIG = {
    "providers": [
        {"name": "sim", "type": "sim", "sim": {"seed": 5, "output_tokens": 8}},
        {"name": "slow", "type": "sim", "sim": {"ttft_ms": 3000, "output_tokens": 8}},
        {"name": "drip", "type": "sim", "sim": {"output_tokens": 200, "tokens_per_s": 20}},
    ],
    "models": [
        {
            "name": "sim-fast",
            "provider": "sim",
            "capabilities": ["chat", "streaming", "embeddings"],
        },
        {
            "name": "sim-slow",
            "provider": "slow",
            "timeouts": {"first_token_s": 0.5, "total_s": 0.5},
            "fallbacks": ["sim-fast"],
        },
        {
            "name": "sim-slow-alone",
            "provider": "slow",
            "timeouts": {"first_token_s": 0.5, "total_s": 0.5},
        },
        {"name": "sim-drip", "provider": "drip"},
    ],
    "routing": {"retries": {"max_attempts": 1}},
    "deployments": {"SimPool": {"num_replicas": 2, "max_ongoing_requests": 500}},
}


@pytest.fixture(scope="module")
def gateway(
    serve_gateway: Callable[..., Deployed], monkeypatch_module: pytest.MonkeyPatch
) -> Deployed:
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", KEY)
    return serve_gateway(CONFIG)


@pytest.fixture
def client(gateway: Deployed) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0)


def test_deployment_settings_from_the_config(client: openai.OpenAI) -> None:
    pool = serve.status().applications["llmgw"].deployments["SimPool"]
    assert pool.replica_states.get("RUNNING") == 2


def test_chat_and_stream_through_the_pool(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="sim-fast", messages=HELLO)
    assert raw.headers["x-llmgw-provider"] == "sim"
    assert raw.parse().usage.completion_tokens == 8
    chunks = list(client.chat.completions.create(model="sim-fast", messages=HELLO, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_embeddings_through_the_pool(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="sim-fast", input=["a", "b"], dimensions=8)
    assert [len(d.embedding) for d in result.data] == [8, 8]


def test_first_token_timeout_falls_back(client: openai.OpenAI) -> None:
    start = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(
        model="sim-slow", messages=HELLO, stream=True
    )
    assert raw.headers["x-llmgw-model"] == "sim-fast"
    assert list(raw.parse())
    assert time.monotonic() - start < 2.5


def test_timeout_without_fallback_is_504(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="sim-slow-alone", messages=HELLO)
    assert info.value.status_code == 504
    assert info.value.response.json()["error"]["code"] == "upstream_timeout"


def test_client_disconnect_cancels_the_stream(gateway: Deployed) -> None:
    hang_up_after_first_token(gateway.url, KEY, "sim-drip", "leaver-1")
    # The gateway records the call as closed by the client (499), long before the 10 s the
    # full stream would take, which shows the upstream generator was stopped.
    assert usage_status(gateway.store_url, "leaver-1", within_s=8) == 499
