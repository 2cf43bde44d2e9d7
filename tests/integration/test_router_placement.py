"""`routing.placement: router`: fallback chains run in the Router deployment, with the same
answers, headers and fallback as the default placement. Here the sim provider is also
`server.inline_providers`, so the Router calls it in-process and no SimPool is deployed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import openai
import pytest
from ray import serve

from gateway.store.store import Store
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
        {"name": "sim-dead", "provider": "flaky"},
    ],
    "routing": {"placement": "router", "retries": {"max_attempts": 2, "base_delay_s": 0.0}},
    "server": {"inline_providers": ["sim"]},
}


@pytest.fixture(scope="module")
def gateway(
    serve_gateway: Callable[..., Deployed], monkeypatch_module: pytest.MonkeyPatch
) -> Deployed:
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", KEY)
    return serve_gateway(CONFIG)


@pytest.fixture(scope="module")
def client(gateway: Deployed) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0)


def test_router_deployed_and_inline_pool_not(client: openai.OpenAI) -> None:
    deployments = serve.status().applications["llmgw"].deployments
    # Every deployment is bound (serve_config.yaml may set any); those unused run no replica.
    assert deployments["Router"].replica_states.get("RUNNING", 0) >= 1
    for name in set(deployments) - {"Ingress", "Router"}:
        assert not any(deployments[name].replica_states.values()), name


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


def _recorded(store: Store, request_id: str, timeout_s: float = 10.0) -> tuple[Any, Any]:
    """The usage row and audit event of one call (the writer flushes within a second)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        usage = [r for r in store.list_usage(limit=200) if r.request_id == request_id]
        audit = [e for e in store.list_audit(limit=200) if e.request_id == request_id]
        if usage and audit:
            return usage[0], audit[0]
        time.sleep(0.2)
    raise AssertionError(f"no usage row and audit event for {request_id}")


@pytest.mark.parametrize("stream", [False, True])
def test_a_failed_chain_via_router_is_metered_and_audited_with_its_attempts(
    client: openai.OpenAI, gateway: Deployed, stream: bool
) -> None:
    request_id = f"router-failed-{uuid.uuid4().hex[:12]}"
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="sim-dead",
            messages=HELLO,
            stream=stream,
            extra_headers={"x-request-id": request_id},
        )
    assert caught.value.status_code == 503
    usage, audit = _recorded(Store(gateway.store_url), request_id)
    assert (usage.status, usage.attempts) == (503, 2)  # both retries, as the Router made them
    assert [a["model"] for a in audit.detail["attempts"]] == ["sim-dead", "sim-dead"]
