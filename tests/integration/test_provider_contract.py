"""The gateway on Ray Serve, driven with the `openai` SDK, over all five provider adapters.

Each provider's pool talks to that provider's local protocol server (running in this test
process); what a client sees through the gateway must be OpenAI's shapes whatever is behind it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator

import openai
import pytest

from tests.integration.conftest import Deployed
from tests.protocol_servers import (
    AnthropicServer,
    AzureOpenAIServer,
    BedrockServer,
    Failure,
    OllamaServer,
    OpenAIServer,
    ProtocolServer,
    Received,
    Reply,
    ToolUse,
)

pytestmark = pytest.mark.ray

KEY = "sk-llmgw-contract-0123456789abcdef"
HELLO = [{"role": "user", "content": "Hello"}]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}

# Pool replicas are Ray worker processes: they inherit the environment the session's Ray was
# started with, so the keys they read are set here, at collection, before any cluster starts.
KEYS = {
    "LLMGW_CONTRACT_OPENAI_KEY": "sk-contract-openai",
    "LLMGW_CONTRACT_ANTHROPIC_KEY": "sk-ant-contract",
    "LLMGW_CONTRACT_AZURE_KEY": "azure-contract-key",
}
for _name, _value in KEYS.items():
    os.environ.setdefault(_name, _value)
# boto3 signs with the standard chain; whatever the environment holds, the server checks that.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIDLLMGWCONTRACT")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "llmgw-contract-secret")

KINDS = ["openai", "anthropic", "ollama", "azure_openai", "bedrock"]
EMBEDDERS = ["openai", "ollama", "azure_openai", "bedrock"]


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, ProtocolServer]]:
    started: dict[str, ProtocolServer] = {
        "openai": OpenAIServer(os.environ["LLMGW_CONTRACT_OPENAI_KEY"]),
        "anthropic": AnthropicServer(os.environ["LLMGW_CONTRACT_ANTHROPIC_KEY"]),
        "ollama": OllamaServer(),
        "azure_openai": AzureOpenAIServer(os.environ["LLMGW_CONTRACT_AZURE_KEY"]),
        "bedrock": BedrockServer(
            os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
        ),
    }
    for server in started.values():
        server.start()
    yield started
    for server in started.values():
        server.stop()


def gateway_config(servers: dict[str, ProtocolServer]) -> dict:
    everything = ["chat", "streaming", "tools", "vision", "json_mode"]
    providers = [
        {
            "name": "openai",
            "type": "openai",
            "base_url": f"{servers['openai'].url}/v1",
            "api_key_env": "LLMGW_CONTRACT_OPENAI_KEY",
        },
        {
            "name": "anthropic",
            "type": "anthropic",
            "base_url": servers["anthropic"].url,
            "api_key_env": "LLMGW_CONTRACT_ANTHROPIC_KEY",
        },
        {"name": "ollama", "type": "ollama", "base_url": servers["ollama"].url},
        {
            "name": "azure_openai",
            "type": "azure_openai",
            "endpoint": servers["azure_openai"].url,
            "api_version": "2024-10-21",
            "api_key_env": "LLMGW_CONTRACT_AZURE_KEY",
        },
        {
            "name": "bedrock",
            "type": "bedrock",
            "region": "us-east-1",
            "endpoint_url": servers["bedrock"].url,
        },
    ]
    upstream = {
        "openai": ("gpt-test", "text-embedding-test"),
        "anthropic": ("claude-test", None),
        "ollama": ("llama3.2", "nomic-embed-text"),
        "azure_openai": ("gpt-test-deployment", "embedding-deployment"),
        "bedrock": ("anthropic.claude-test-v1:0", "amazon.titan-embed-text-v2:0"),
    }
    models = []
    for kind, (chat, embed) in upstream.items():
        models.append(
            {
                "name": f"{kind}-chat",
                "provider": kind,
                "upstream": chat,
                "capabilities": everything,
                "timeouts": {"connect_s": 2, "first_token_s": 10, "total_s": 20},
            }
        )
        if embed:
            models.append(
                {
                    "name": f"{kind}-embed",
                    "provider": kind,
                    "upstream": embed,
                    "capabilities": ["embeddings"],
                    "use_cases": [],
                }
            )
    return {
        "providers": providers,
        "models": models,
        "routing": {"retries": {"max_attempts": 1}, "fallback": False},
    }


@pytest.fixture(scope="module")
def gateway(
    serve_gateway: Callable[..., Deployed],
    monkeypatch_module: pytest.MonkeyPatch,
    servers: dict[str, ProtocolServer],
) -> Deployed:
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", KEY)
    return serve_gateway(gateway_config(servers))


@pytest.fixture
def client(gateway: Deployed) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0)


def calls(server: ProtocolServer) -> list[Received]:
    """What the gateway sent upstream for clients: health probes (one GET each) left out."""
    return [r for r in server.received if r.method != "GET"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest, servers: dict[str, ProtocolServer]) -> str:
    servers[request.param].reset()
    return request.param


def test_chat(client: openai.OpenAI, servers: dict[str, ProtocolServer], kind: str) -> None:
    servers[kind].script(Reply(text="Paris.", prompt_tokens=12, completion_tokens=2))
    raw = client.chat.completions.with_raw_response.create(model=f"{kind}-chat", messages=HELLO)
    response = raw.parse()
    assert raw.headers["x-llmgw-provider"] == kind
    assert response.model == f"{kind}-chat"
    assert response.object == "chat.completion"
    assert response.choices[0].message.content == "Paris."
    assert response.choices[0].finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (12, 2)
    assert len(calls(servers[kind])) == 1


def test_stream(client: openai.OpenAI, servers: dict[str, ProtocolServer], kind: str) -> None:
    servers[kind].script(Reply(text="one two three", chunk_chars=4, completion_tokens=3))
    chunks = list(
        client.chat.completions.create(
            model=f"{kind}-chat",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3
    assert {c.model for c in chunks} == {f"{kind}-chat"}


def test_tool_calls_stream_as_incremental_deltas(
    client: openai.OpenAI, servers: dict[str, ProtocolServer], kind: str
) -> None:
    servers[kind].script(Reply(text="", tool_calls=[ToolUse("get_weather", {"city": "Paris"})]))
    chunks = list(
        client.chat.completions.create(
            model=f"{kind}-chat", messages=HELLO, tools=[TOOL], stream=True
        )
    )
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    head, *rest = deltas
    assert head.index == 0 and head.id and head.type == "function"
    assert head.function.name == "get_weather" and head.function.arguments == ""
    assert json.loads("".join(d.function.arguments for d in rest)) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_tool_round_trip(
    client: openai.OpenAI, servers: dict[str, ProtocolServer], kind: str
) -> None:
    servers[kind].script(
        Reply(text="", tool_calls=[ToolUse("get_weather", {"city": "Paris"})]),
        Reply(text="Sunny."),
    )
    first = client.chat.completions.create(model=f"{kind}-chat", messages=HELLO, tools=[TOOL])
    call = first.choices[0].message.tool_calls[0]
    second = client.chat.completions.create(
        model=f"{kind}-chat",
        tools=[TOOL],
        messages=[
            *HELLO,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "24C and sunny"},
        ],
    )
    assert second.choices[0].message.content == "Sunny."
    assert b"24C and sunny" in servers[kind].last.body


def test_json_schema(client: openai.OpenAI, servers: dict[str, ProtocolServer], kind: str) -> None:
    servers[kind].script(Reply(text='{"city": "Paris"}'))
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    response = client.chat.completions.create(
        model=f"{kind}-chat",
        messages=HELLO,
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
    )
    assert json.loads(response.choices[0].message.content) == {"city": "Paris"}


def test_upstream_rate_limit_is_a_429(
    client: openai.OpenAI, servers: dict[str, ProtocolServer], kind: str
) -> None:
    servers[kind].script(Reply(failure=Failure("rate_limit", retry_after=3)))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=f"{kind}-chat", messages=HELLO)
    assert caught.value.status_code == 429
    assert caught.value.body["type"] == "rate_limit_exceeded"


def test_upstream_context_length_is_a_400_naming_messages(
    client: openai.OpenAI, servers: dict[str, ProtocolServer], kind: str
) -> None:
    servers[kind].script(Reply(failure=Failure("context_length")))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=f"{kind}-chat", messages=HELLO)
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.param == "messages"


def test_a_parameter_the_provider_cannot_honour_is_a_400(
    client: openai.OpenAI, servers: dict[str, ProtocolServer], kind: str
) -> None:
    if kind in ("openai", "azure_openai"):
        pytest.skip("OpenAI honours every parameter")
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=f"{kind}-chat", messages=HELLO, logit_bias={"1": 1})
    assert caught.value.param == "logit_bias"
    assert calls(servers[kind]) == []


@pytest.mark.parametrize("embedder", EMBEDDERS)
def test_embeddings(
    client: openai.OpenAI, servers: dict[str, ProtocolServer], embedder: str
) -> None:
    servers[embedder].reset()
    result = client.embeddings.create(
        model=f"{embedder}-embed", input=["first", "second"], dimensions=256
    )
    assert result.model == f"{embedder}-embed"
    assert [len(d.embedding) for d in result.data] == [256, 256]
    assert result.data[0].embedding != result.data[1].embedding
