"""The Bedrock adapter: SigV4-signed Converse, ConverseStream and InvokeModel over boto3."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from urllib.parse import unquote

import pytest

from gateway.config import ConfigError, ProviderConfig
from gateway.errors import InvalidRequestError, RateLimitError, UpstreamError
from gateway.providers.bedrock import BedrockProvider
from gateway.wire import EmbeddingRequest
from tests.protocol_servers import Failure, Reply, ToolUse
from tests.unit.providers.conftest import PNG, Upstream, assistant_turn

TOOL = {
    "type": "function",
    "function": {"name": "lookup", "description": "Look up", "parameters": {"type": "object"}},
}


async def test_requests_are_sigv4_signed_and_name_the_model_in_the_path(
    bedrock_upstream: Upstream,
) -> None:
    await bedrock_upstream.provider.complete(bedrock_upstream.request("Hi"), bedrock_upstream.model)
    received = bedrock_upstream.server.last
    assert received.path == "/model/anthropic.claude-test-v1%3A0/converse"
    assert received.headers["authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDLLMGWTEST/"
    )
    assert "/us-east-1/bedrock/aws4_request" in received.headers["authorization"]


async def test_a_wrong_secret_fails_the_signature_check(
    bedrock_upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    provider = BedrockProvider(bedrock_upstream.provider.config)
    try:
        with pytest.raises(UpstreamError) as caught:
            await provider.complete(bedrock_upstream.request("Hi"), bedrock_upstream.model)
    finally:
        await provider.aclose()
    assert caught.value.code == "upstream_auth_failed"
    assert "signature" in caught.value.upstream_detail


async def test_system_inference_config_and_metadata(bedrock_upstream: Upstream) -> None:
    request = bedrock_upstream.request(
        {"role": "system", "content": "Be terse."},
        {"role": "developer", "content": "Use French."},
        "Hi",
        temperature=0,
        top_p=0.9,
        max_tokens=99,
        stop=["END"],
        user="u-1",
        metadata={"team": "search"},
    )
    await bedrock_upstream.provider.complete(request, bedrock_upstream.model)
    body = bedrock_upstream.server.last.json()
    assert body["system"] == [{"text": "Be terse."}, {"text": "Use French."}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "Hi"}]}]
    assert body["inferenceConfig"] == {
        "maxTokens": 99,
        "temperature": 0,
        "topP": 0.9,
        "stopSequences": ["END"],
    }
    assert body["requestMetadata"] == {"team": "search", "user": "u-1"}


async def test_tool_use_and_merged_tool_results_alternate(bedrock_upstream: Upstream) -> None:
    calls = [
        {"id": "t1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}},
        {"id": "t2", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 2}'}},
    ]
    request = bedrock_upstream.request(
        "Look up 1 and 2",
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "t1", "content": "one"},
        {"role": "tool", "tool_call_id": "t2", "content": "two"},
        tools=[TOOL],
        tool_choice="required",
    )
    await bedrock_upstream.provider.complete(request, bedrock_upstream.model)
    body = bedrock_upstream.server.last.json()
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {"q": 1}}},
        {"toolUse": {"toolUseId": "t2", "name": "lookup", "input": {"q": 2}}},
    ]
    assert body["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "t1", "content": [{"text": "one"}]}},
        {"toolResult": {"toolUseId": "t2", "content": [{"text": "two"}]}},
    ]
    assert body["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "lookup",
                    "inputSchema": {"json": {"type": "object"}},
                    "description": "Look up",
                }
            }
        ],
        "toolChoice": {"any": {}},
    }


async def test_a_named_tool_choice_forces_that_tool(bedrock_upstream: Upstream) -> None:
    bedrock_upstream.server.script(Reply(tool_calls=[ToolUse("lookup", {"q": 3})]))
    response = await bedrock_upstream.provider.complete(
        bedrock_upstream.request(
            "Hi", tools=[TOOL], tool_choice={"type": "function", "function": {"name": "lookup"}}
        ),
        bedrock_upstream.model,
    )
    assert bedrock_upstream.server.last.json()["toolConfig"]["toolChoice"] == {
        "tool": {"name": "lookup"}
    }
    assert response.choices[0].message.tool_calls[0].function.arguments == '{"q": 3}'


async def test_json_schema_is_native_output_config(bedrock_upstream: Upstream) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    bedrock_upstream.server.script(Reply(text='{"n": 2}'))
    await bedrock_upstream.provider.complete(
        bedrock_upstream.request(
            "n?",
            response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
        ),
        bedrock_upstream.model,
    )
    output = bedrock_upstream.server.last.json()["outputConfig"]["textFormat"]
    assert output["type"] == "json_schema"
    assert json.loads(output["structure"]["jsonSchema"]["schema"]) == schema
    assert output["structure"]["jsonSchema"]["name"] == "n"


async def test_json_object_is_emulated_with_an_instruction(bedrock_upstream: Upstream) -> None:
    bedrock_upstream.server.script(Reply(text='```\n{"ok": 1}\n```'))
    response = await bedrock_upstream.provider.complete(
        bedrock_upstream.request("JSON", response_format={"type": "json_object"}),
        bedrock_upstream.model,
    )
    body = bedrock_upstream.server.last.json()
    assert "toolConfig" not in body
    assert "single JSON object" in body["system"][-1]["text"]
    assert response.choices[0].message.content == '{"ok": 1}'
    assert response.choices[0].finish_reason == "stop"


async def test_images_go_as_bytes_fetched_when_given_a_url(bedrock_upstream: Upstream) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    http_url = f"{bedrock_upstream.server.url}/files/cat.png"
    parts = [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": data_url}},
        {"type": "image_url", "image_url": {"url": http_url}},
    ]
    await bedrock_upstream.provider.complete(
        bedrock_upstream.request({"role": "user", "content": parts}), bedrock_upstream.model
    )
    content = bedrock_upstream.server.last.json()["messages"][0]["content"]
    image = {"image": {"format": "png", "source": {"bytes": base64.b64encode(PNG).decode()}}}
    assert content == [{"text": "Compare"}, image, image]


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("model_context_window_exceeded", "length"),
    ],
)
async def test_stop_reasons(bedrock_upstream: Upstream, stop_reason: str, finish: str) -> None:
    bedrock_upstream.server.script(
        Reply(native_finish=stop_reason), Reply(native_finish=stop_reason)
    )
    response = await bedrock_upstream.provider.complete(
        bedrock_upstream.request("Hi"), bedrock_upstream.model
    )
    assert response.choices[0].finish_reason == finish
    chunks = await bedrock_upstream.collect(bedrock_upstream.request("Hi"))
    assert chunks[-2].choices[0].finish_reason == finish


async def test_malformed_model_output_is_an_upstream_error(bedrock_upstream: Upstream) -> None:
    bedrock_upstream.server.script(Reply(native_finish="malformed_tool_use"))
    with pytest.raises(UpstreamError) as caught:
        await bedrock_upstream.provider.complete(
            bedrock_upstream.request("Hi"), bedrock_upstream.model
        )
    assert caught.value.code == "malformed_tool_use"


async def test_an_in_stream_throttling_exception_is_a_429(bedrock_upstream: Upstream) -> None:
    bedrock_upstream.server.script(
        Reply(text="partial", failure=Failure("rate_limit"), failure_in_stream=True)
    )
    with pytest.raises(RateLimitError) as caught:
        await bedrock_upstream.collect(bedrock_upstream.request("Hi"))
    assert "Too many requests" in caught.value.upstream_detail


@pytest.mark.parametrize(
    ("param", "value"),
    [("seed", 1), ("presence_penalty", 0.1), ("logprobs", True), ("parallel_tool_calls", False)],
)
async def test_what_converse_cannot_do_is_a_400_naming_it(
    bedrock_upstream: Upstream, param: str, value: object
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await bedrock_upstream.provider.complete(
            bedrock_upstream.request("Hi", tools=[TOOL], **{param: value}), bedrock_upstream.model
        )
    assert caught.value.param == param


async def test_the_event_loop_keeps_running_while_boto3_blocks(bedrock_upstream: Upstream) -> None:
    bedrock_upstream.server.script(Reply(delay_s=0.5), Reply(delay_s=0.5))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    await asyncio.gather(
        bedrock_upstream.provider.complete(bedrock_upstream.request("a"), bedrock_upstream.model),
        bedrock_upstream.collect(bedrock_upstream.request("b")),
    )
    task.cancel()
    assert time.monotonic() - started < 0.9  # the two calls ran side by side
    assert ticks > 25


def test_the_thread_pool_is_bounded_by_max_connections() -> None:
    small = BedrockProvider(
        ProviderConfig(name="b", type="bedrock", region="us-east-1", max_connections=4)
    )
    large = BedrockProvider(
        ProviderConfig(name="b", type="bedrock", region="us-east-1", max_connections=1000)
    )
    assert (small.threads, large.threads) == (4, 64)


def test_a_region_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(ConfigError, match="region"):
        BedrockProvider(ProviderConfig(name="b", type="bedrock"))


async def test_titan_embeds_one_text_per_invoke_call(bedrock_upstream: Upstream) -> None:
    model = bedrock_upstream.embed_model
    response = await bedrock_upstream.provider.embed(
        EmbeddingRequest(model=model.name, input=["alpha beta", "gamma"], dimensions=512), model
    )
    invokes = bedrock_upstream.server.received
    assert len(invokes) == 2
    assert {unquote(r.path) for r in invokes} == {"/model/amazon.titan-embed-text-v2:0/invoke"}
    assert sorted(r.json()["inputText"] for r in invokes) == ["alpha beta", "gamma"]
    assert all(r.json()["dimensions"] == 512 and r.json()["normalize"] for r in invokes)
    assert [len(e.embedding) for e in response.data] == [512, 512]
    assert response.usage.prompt_tokens == 3


async def test_cohere_embeds_all_texts_in_one_call(bedrock_upstream: Upstream) -> None:
    model = bedrock_upstream.with_model(
        name="cohere", upstream="cohere.embed-v4:0", capabilities=["embeddings"]
    )
    response = await bedrock_upstream.provider.embed(
        EmbeddingRequest(model="cohere", input=["one two", "three"], dimensions=256), model
    )
    body = bedrock_upstream.server.last.json()
    assert body == {
        "texts": ["one two", "three"],
        "input_type": "search_document",
        "embedding_types": ["float"],
        "output_dimension": 256,
    }
    assert len(bedrock_upstream.server.received) == 1
    assert [len(e.embedding) for e in response.data] == [256, 256]
    assert response.usage.prompt_tokens == 3  # from the token-count header


@pytest.mark.parametrize(
    ("upstream_id", "dimensions"),
    [
        ("amazon.titan-embed-text-v2:0", 300),
        ("amazon.titan-embed-text-v1", 256),
        ("cohere.embed-english-v3", 256),
    ],
)
async def test_dimensions_a_model_cannot_produce_are_a_400(
    bedrock_upstream: Upstream, upstream_id: str, dimensions: int
) -> None:
    model = bedrock_upstream.with_model(upstream=upstream_id, capabilities=["embeddings"])
    with pytest.raises(InvalidRequestError) as caught:
        await bedrock_upstream.provider.embed(
            EmbeddingRequest(model="m", input="x", dimensions=dimensions), model
        )
    assert caught.value.param == "dimensions"
    assert bedrock_upstream.server.received == []


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_signed_thinking_goes_back_with_the_tool_use_turn(
    bedrock_upstream: Upstream, stream: bool
) -> None:
    # With thinking on, the API refuses a tool-use turn replayed without its signed thinking:
    # it reaches the client as `thinking_blocks` and is sent back from there.
    model = bedrock_upstream.with_model(upstream="anthropic.claude-thinking-test-v1:0")
    bedrock_upstream.server.script(
        Reply(thinking="I should look it up.", text="", tool_calls=[ToolUse("lookup", {"q": 1})]),
        Reply(text="Found it."),
    )
    request = bedrock_upstream.request("Look up 1", tools=[TOOL])
    if stream:
        assistant = assistant_turn(await bedrock_upstream.collect(request, model))
    else:
        first = await bedrock_upstream.provider.complete(request, model)
        assistant = first.choices[0].message.model_dump(exclude_none=True)
    assert assistant["thinking_blocks"][0]["thinking"] == "I should look it up."
    call_id = assistant["tool_calls"][0]["id"]
    follow_up = bedrock_upstream.request(
        "Look up 1",
        assistant,
        {"role": "tool", "tool_call_id": call_id, "content": "1 is one"},
        tools=[TOOL],
    )
    second = await bedrock_upstream.provider.complete(follow_up, model)
    assert second.choices[0].message.content == "Found it."
    assert (
        bedrock_upstream.server.last.json()["messages"][1]["content"][0]["reasoningContent"][
            "reasoningText"
        ]["text"]
        == "I should look it up."
    )


async def test_a_tool_use_turn_without_its_thinking_is_refused_upstream(
    bedrock_upstream: Upstream,
) -> None:
    model = bedrock_upstream.with_model(upstream="anthropic.claude-thinking-test-v1:0")
    calls = [{"id": "t1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]
    request = bedrock_upstream.request(
        "Look up",
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "t1", "content": "found"},
        tools=[TOOL],
    )
    with pytest.raises(InvalidRequestError) as caught:
        await bedrock_upstream.provider.complete(request, model)
    assert "thinking" in caught.value.upstream_detail or "reasoning" in caught.value.upstream_detail
