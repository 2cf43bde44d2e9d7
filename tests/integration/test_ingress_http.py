"""`--http-mode ingress` on Ray Serve: two ingress replicas serve one port themselves
(SO_REUSEPORT, no Serve proxy in the path), driven with the `openai` SDK as a client would,
and replaced under streams in flight."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from ray import serve

from tests.integration.conftest import Deployed, hang_up_after_first_token, usage_status
from tests.openapi import validate

pytestmark = pytest.mark.ray

KEY = "sk-llmgw-ingress-http-0123456789abcdef"
HELLO = [{"role": "user", "content": "Hello"}]
SLOW_TOKENS = 48  # sim-slow: 48 tokens at 6 a second, a stream of ~8 s (outlives a roll)


def config(replicas: int) -> dict[str, Any]:
    return {
        "providers": [
            {"name": "sim", "type": "sim", "sim": {"seed": 3, "output_tokens": 4}},
            {
                "name": "slow",
                "type": "sim",
                "sim": {"seed": 4, "output_tokens": SLOW_TOKENS, "tokens_per_s": 6},
            },
        ],
        "models": [
            {"name": "sim-a", "provider": "sim"},
            {"name": "sim-slow", "provider": "slow"},
        ],
        "deployments": {"Ingress": {"num_replicas": replicas}},
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listeners(port: int) -> int:
    """Listening sockets on 127.0.0.1:port: one per ingress replica bound to it."""
    wanted = f"0100007F:{port:04X}"
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[1] == wanted and row.split()[3] == "0A")


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def deploy(
    serve_gateway: Callable[..., Deployed], monkeypatch_module: pytest.MonkeyPatch, port: int
) -> Callable[[int], Deployed]:
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", KEY)
    return lambda replicas: serve_gateway(config(replicas), listen=f"127.0.0.1:{port}")


@pytest.fixture(scope="module")
def deployed(deploy: Callable[[int], Deployed]) -> Deployed:
    return deploy(2)


@pytest.fixture(scope="module")
def client(deployed: Deployed) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{deployed.url}/v1", api_key=KEY, max_retries=0)


def test_both_ingress_replicas_listen_on_the_port(client: openai.OpenAI, port: int) -> None:
    wait_for(lambda: listeners(port) == 2, 30, "two listeners on the port")
    answers = [client.chat.completions.create(model="sim-a", messages=HELLO) for _ in range(20)]
    assert all(a.choices[0].message.content for a in answers)


def test_chat_stream_and_errors_validate_against_openapi(client: openai.OpenAI) -> None:
    answer = client.chat.completions.with_raw_response.create(model="sim-a", messages=HELLO)
    assert answer.headers["x-request-id"].startswith("req_")  # ours: no Serve proxy adds one
    parsed = answer.parse()
    validate(parsed.model_dump(mode="json", exclude_unset=True), "CreateChatCompletionResponse")

    chunks = list(
        client.chat.completions.create(
            model="sim-a", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    for chunk in chunks:
        validate(
            chunk.model_dump(mode="json", exclude_unset=True), "CreateChatCompletionStreamResponse"
        )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4

    stranger = openai.OpenAI(base_url=str(client.base_url), api_key="sk-nobody", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as denied:
        stranger.models.list()
    validate(denied.value.response.json(), "ErrorResponse")

    raw = httpx.post(
        f"{client.base_url}chat/completions",
        content=b"{not json",
        headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
    )
    assert raw.status_code == 400
    validate(raw.json(), "ErrorResponse")


async def test_the_autoscaler_sees_requests_served_by_the_replicas(
    client: openai.OpenAI,
) -> None:
    handle = serve.get_deployment_handle("Ingress", "llmgw")

    def slow_stream() -> int:
        stream = client.chat.completions.create(model="sim-slow", messages=HELLO, stream=True)
        return sum(1 for _ in stream)

    with ThreadPoolExecutor(4) as pool:
        streams = [pool.submit(slow_stream) for _ in range(4)]
        await asyncio.sleep(0.8)
        seen = [await handle.record_autoscaling_stats.remote() for _ in range(6)]
        assert all(s.result(timeout=30) > 0 for s in streams)
    assert max(s["side_channel_in_flight"] for s in seen) >= 1
    assert await handle.record_autoscaling_stats.remote() == {"side_channel_in_flight": 0}


def test_a_client_that_hangs_up_ends_its_stream(client: openai.OpenAI, deployed: Deployed) -> None:
    # uvicorn in the replica, not Serve's proxy, sees the client leave: the call is recorded
    # as closed by the client (499) well before the 8 s the whole stream would take.
    hang_up_after_first_token(deployed.url, KEY, "sim-slow", "leaver-ingress")
    assert usage_status(deployed.store_url, "leaver-ingress", within_s=5) == 499


def test_replacing_the_replicas_finishes_the_streams_in_flight(
    client: openai.OpenAI, deploy: Callable[[int], Deployed], port: int
) -> None:
    def slow_stream() -> tuple[str, str | None]:
        stream = client.chat.completions.create(model="sim-slow", messages=HELLO, stream=True)
        text, finish = "", None
        for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
        return text, finish

    with ThreadPoolExecutor(6) as pool:
        streams = [pool.submit(slow_stream) for _ in range(6)]
        time.sleep(0.5)  # all six are streaming
        # A new config (its own store) rolls every ingress replica: the old ones stop.
        deploy(1)
        results = [s.result(timeout=60) for s in streams]
    assert all(finish == "stop" for _, finish in results), results
    assert all(len(text.split()) == SLOW_TOKENS for text, _ in results), results
    wait_for(lambda: listeners(port) == 1, 60, "one listener after the roll")
    answer = client.chat.completions.create(model="sim-a", messages=HELLO)
    assert answer.choices[0].message.content
