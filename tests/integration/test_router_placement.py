"""`routing.placement: router`: fallback chains run in the Router deployment, with the same
answers, headers and fallback as the default placement. Here the sim provider is also
`server.inline_providers`, so the Router calls it in-process and no SimPool is deployed."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest
from ray import serve

from tests.integration.conftest import Deployed

pytestmark = pytest.mark.ray

KEY = "sk-llmgw-router-placement-0123456789"
HELLO = [{"role": "user", "content": "Hello"}]

CONFIG = {
    "providers": [
        {"name": "sim", "type": "sim", "sim": {"seed": 5, "output_tokens": 8}},
        {"name": "flaky", "type": "sim", "sim": {"failure_rate": 1.0, "failure_statuses": [503]}},
    ],
    "models": [
        {"name": "sim-fast", "provider": "sim"},
        {"name": "sim-broken", "provider": "flaky", "fallbacks": ["sim-fast"]},
    ],
    "routing": {"placement": "router", "retries": {"max_attempts": 2, "base_delay_s": 0.0}},
    "server": {"inline_providers": ["sim"]},
}


@pytest.fixture(scope="module")
def client(
    serve_gateway: Callable[..., Deployed], monkeypatch_module: pytest.MonkeyPatch
) -> openai.OpenAI:
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", KEY)
    gateway = serve_gateway(CONFIG)
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0)


def test_router_deployed_and_inline_pool_not(client: openai.OpenAI) -> None:
    deployments = serve.status().applications["llmgw"].deployments
    assert set(deployments) == {"Ingress", "Router"}


def test_chat_and_stream_via_router(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="sim-fast", messages=HELLO)
    chunks = list(client.chat.completions.create(model="sim-fast", messages=HELLO, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == completion.choices[0].message.content


def test_fallback_via_router(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="sim-broken", messages=HELLO)
    assert raw.headers["x-llmgw-model"] == "sim-fast"
    stream = client.chat.completions.with_raw_response.create(
        model="sim-broken", messages=HELLO, stream=True
    )
    assert stream.headers["x-llmgw-model"] == "sim-fast"
    assert list(stream.parse())
