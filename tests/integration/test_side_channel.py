"""`server.side_channel`: the gateway on Ray Serve with calls from the ingress to the OpenAI pool
over the pool's own connections, driven with the `openai` SDK as a client would."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
import ray
from ray import serve

from tests.integration.conftest import Deployed
from tests.openapi import validate
from tests.protocol_servers import Failure, OpenAIServer, Reply

pytestmark = pytest.mark.ray

KEY = "sk-llmgw-side-channel-0123456789abcdef"
HELLO = [{"role": "user", "content": "Hello"}]
# Replicas report their calls in flight to Serve every few seconds; Serve then decides.
SCALE_S = 90.0
# Pool replicas inherit the environment the session's Ray started with: set at collection.
os.environ.setdefault("LLMGW_SIDE_CHANNEL_OPENAI_KEY", "sk-side-channel-openai")


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(os.environ["LLMGW_SIDE_CHANNEL_OPENAI_KEY"]) as started:
        yield started


@pytest.fixture(scope="module")
def client(
    serve_gateway: Callable[..., Deployed],
    monkeypatch_module: pytest.MonkeyPatch,
    server: OpenAIServer,
) -> openai.OpenAI:
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", KEY)
    deployed = serve_gateway(
        {
            "server": {"side_channel": True},
            "providers": [
                {"name": "sim", "type": "sim", "sim": {"seed": 5, "output_tokens": 4}},
                {
                    "name": "up",
                    "type": "openai",
                    "base_url": f"{server.url}/v1",
                    "api_key_env": "LLMGW_SIDE_CHANNEL_OPENAI_KEY",
                },
            ],
            "models": [
                {"name": "backup", "provider": "sim"},
                {
                    "name": "gpt-side",
                    "provider": "up",
                    "upstream": "gpt-x",
                    "fallbacks": ["backup"],
                },
            ],
            # Scales on its side channel's calls (Serve sees none of them by itself).
            "deployments": {
                "OpenAIPool": {
                    "autoscaling_config": {
                        "min_replicas": 1,
                        "initial_replicas": 1,
                        "max_replicas": 2,
                        "target_ongoing_requests": 1,
                        "upscale_delay_s": 0,
                        "downscale_delay_s": 600,
                    }
                }
            },
        }
    )
    return openai.OpenAI(base_url=f"{deployed.url}/v1", api_key=KEY, max_retries=0)


async def _channel_calls() -> int:
    """Calls the OpenAI pool replica has served by its side channel."""
    return await serve.get_deployment_handle("OpenAIPool", "llmgw").side_channel_calls.remote()


async def _wait_for_endpoint(client: openai.OpenAI) -> None:
    """Until a call goes by the side channel (the ingress reads the directory every second)."""
    for _ in range(50):
        await asyncio.to_thread(client.chat.completions.create, model="gpt-side", messages=HELLO)
        if await _channel_calls():
            return
    raise AssertionError("no call reached the pool by its side channel")


async def test_calls_and_streams_go_by_the_side_channel(
    client: openai.OpenAI, server: OpenAIServer
) -> None:
    await _wait_for_endpoint(client)
    before = await _channel_calls()
    server.script(Reply(text="over the side", completion_tokens=3))
    answer = await asyncio.to_thread(
        client.chat.completions.create, model="gpt-side", messages=HELLO
    )
    validate(answer.model_dump(mode="json", exclude_unset=True), "CreateChatCompletionResponse")
    assert answer.choices[0].message.content == "over the side"
    assert answer.usage is not None and answer.usage.completion_tokens == 3

    server.script(Reply(text="one two three", chunk_chars=4, completion_tokens=3))
    chunks = await asyncio.to_thread(
        lambda: list(
            client.chat.completions.create(
                model="gpt-side",
                messages=HELLO,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    )
    for chunk in chunks:
        validate(
            chunk.model_dump(mode="json", exclude_unset=True), "CreateChatCompletionStreamResponse"
        )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert await _channel_calls() == before + 2


def test_an_upstream_error_keeps_its_status_or_falls_back(
    client: openai.OpenAI, server: OpenAIServer
) -> None:
    server.script(Reply(failure=Failure("bad_request", "no such parameter")))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-side", messages=HELLO)
    validate(info.value.response.json(), "ErrorResponse")

    server.script(*[Reply(failure=Failure("server"))] * 2)  # the call and its one retry
    answer = client.chat.completions.create(model="gpt-side", messages=HELLO)
    assert answer.model == "backup"  # the pool's 5xx crossed as a gateway error: fallback


def test_the_directory_lists_each_pool_replica(client: openai.OpenAI) -> None:
    from deployments.side_channel_directory import DIRECTORY_NAME, NAMESPACE

    directory: Any = ray.get_actor(DIRECTORY_NAME, namespace=NAMESPACE)
    _, _, endpoints, draining = ray.get(directory.endpoints.remote(-1))
    assert {kind: len(listed) for kind, listed in endpoints.items()} == {"openai": 1, "sim": 1}
    assert draining == []


def _running(deployment: str) -> int:
    status = serve.status().applications["llmgw"].deployments[deployment]
    return status.replica_states.get("RUNNING", 0)


def test_a_pool_scales_up_on_its_side_channel_calls(
    client: openai.OpenAI, server: OpenAIServer
) -> None:
    assert _running("OpenAIPool") == 1
    deadline = time.monotonic() + SCALE_S

    def call(_: int) -> None:
        client.chat.completions.create(model="gpt-side", messages=HELLO)

    with ThreadPoolExecutor(6) as threads:
        while _running("OpenAIPool") < 2:
            assert time.monotonic() < deadline, "the pool did not scale on side channel calls"
            server.script(*[Reply(text="slow", delay_s=2.0)] * 6)
            list(threads.map(call, range(6)))
