"""What every provider adapter guarantees, each with its real SDK against its protocol server."""

from __future__ import annotations

import base64
import json
import struct
from urllib.parse import unquote

import pytest

from gateway.errors import (
    InvalidRequestError,
    UpstreamError,
)
from gateway.wire import ChatCompletionChunk, EmbeddingRequest
from tests.protocol_servers import Reply, ToolUse
from tests.unit.providers.conftest import PNG, Upstream

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
    },
}
CITY_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "city",
        "schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
            "required": ["city", "population"],
            "additionalProperties": False,
        },
    },
}


def content_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def finish_of(chunks: list[ChatCompletionChunk]) -> str | None:
    return next(
        (c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason),
        None,
    )


# ------------------------------------------------------------------------------ chat


async def test_plain_chat_answers_with_our_model_name(upstream: Upstream) -> None:
    upstream.server.script(
        Reply(text="Paris is the capital.", prompt_tokens=21, completion_tokens=5)
    )
    response = await upstream.provider.complete(
        upstream.request("What is the capital of France?"), upstream.model
    )
    assert response.model == upstream.model.name
    assert response.choices[0].message.content == "Paris is the capital."
    assert response.choices[0].finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (21, 5)
    assert response.usage.total_tokens == 26
    received = upstream.server.last
    # The upstream model id went in the body, or in the path (Bedrock, Azure deployments).
    sent = received.body.decode() + unquote(received.path)
    assert upstream.model.upstream_id in sent


async def test_stream_has_role_first_then_content_then_finish_then_usage(
    upstream: Upstream,
) -> None:
    upstream.server.script(Reply(text="one two three four", chunk_chars=4, completion_tokens=4))
    chunks = await upstream.collect(upstream.request("Count"))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert content_of(chunks) == "one two three four"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 4
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert {c.id for c in chunks} == {chunks[0].id}
    assert {c.model for c in chunks} == {upstream.model.name}


async def test_multi_turn_conversation_keeps_its_order(upstream: Upstream) -> None:
    request = upstream.request(
        {"role": "system", "content": "You are terse."},
        "My name is Ada.",
        {"role": "assistant", "content": "Hello Ada."},
        "What is my name?",
    )
    await upstream.provider.complete(request, upstream.model)
    body = upstream.server.last.body.decode()
    positions = [body.index(text) for text in ("My name is Ada.", "Hello Ada.", "What is my name?")]
    assert positions == sorted(positions)
    assert "You are terse." in body


# ------------------------------------------------------------------------------ tools


async def test_tool_call_round_trip(upstream: Upstream) -> None:
    upstream.server.script(
        Reply(
            text="",
            tool_calls=[
                ToolUse("get_weather", {"city": "Paris"}, id="call_w1"),
                ToolUse("get_time", {"tz": "CET"}, id="call_t1"),
            ],
        ),
        Reply(text="It is sunny in Paris at noon."),
    )
    tools = [WEATHER_TOOL, TIME_TOOL]
    first = await upstream.provider.complete(
        upstream.request("Weather and time in Paris?", tools=tools), upstream.model
    )
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in message.tool_calls] == ["get_weather", "get_time"]
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Paris"}
    assert all(c.id and c.type == "function" for c in message.tool_calls)

    follow_up = upstream.request(
        "Weather and time in Paris?",
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [c.model_dump() for c in message.tool_calls],
        },
        {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "sunny, 24C"},
        {"role": "tool", "tool_call_id": message.tool_calls[1].id, "content": "12:00"},
        tools=tools,
    )
    second = await upstream.provider.complete(follow_up, upstream.model)
    assert second.choices[0].message.content == "It is sunny in Paris at noon."
    body = upstream.server.last.body.decode()
    assert "sunny, 24C" in body and "12:00" in body


async def test_streamed_tool_calls_arrive_as_incremental_argument_deltas(
    upstream: Upstream,
) -> None:
    upstream.server.script(
        Reply(
            text="",
            chunk_chars=6,
            tool_calls=[
                ToolUse("get_weather", {"city": "Paris"}),
                ToolUse("get_time", {"tz": "Europe/Paris"}),
            ],
        )
    )
    chunks = await upstream.collect(
        upstream.request("Weather and time?", tools=[WEATHER_TOOL, TIME_TOOL])
    )
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    by_index: dict[int, list] = {}
    for delta in deltas:
        by_index.setdefault(delta.index, []).append(delta)
    assert sorted(by_index) == [0, 1]
    for index, name, arguments in (
        (0, "get_weather", {"city": "Paris"}),
        (1, "get_time", {"tz": "Europe/Paris"}),
    ):
        head, *rest = by_index[index]
        assert head.id and head.type == "function"
        assert head.function.name == name and head.function.arguments == ""
        assert rest and all(d.id is None and d.function.name is None for d in rest)
        assert json.loads("".join(d.function.arguments for d in rest)) == arguments
    assert finish_of(chunks) == "tool_calls"


async def test_tool_choice_none_is_honoured(upstream: Upstream) -> None:
    await upstream.provider.complete(
        upstream.request("Hi", tools=[WEATHER_TOOL], tool_choice="none"), upstream.model
    )
    body = upstream.server.last.json()
    choice = body.get("tool_choice") or body.get("toolConfig", {}).get("toolChoice")
    assert choice in ("none", {"type": "none"}) or not body.get("tools")


# ------------------------------------------------------------------------------ output controls


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_json_schema_output_is_checked_and_returned_as_content(
    upstream: Upstream, stream: bool
) -> None:
    upstream.server.script(Reply(text='{"city": "Paris", "population": 2100000}'))
    request = upstream.request("Biggest French city?", response_format=CITY_SCHEMA)
    if stream:
        content = content_of(await upstream.collect(request))
    else:
        content = (
            (await upstream.provider.complete(request, upstream.model)).choices[0].message.content
        )
    assert json.loads(content) == {"city": "Paris", "population": 2100000}


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_json_object_output(upstream: Upstream, stream: bool) -> None:
    upstream.server.script(Reply(text='{"answer": 42}'))
    request = upstream.request("Answer in JSON", response_format={"type": "json_object"})
    if stream:
        chunks = await upstream.collect(request)
        content, finish = content_of(chunks), finish_of(chunks)
    else:
        response = await upstream.provider.complete(request, upstream.model)
        content, finish = response.choices[0].message.content, response.choices[0].finish_reason
    assert json.loads(content) == {"answer": 42}
    assert finish == "stop"


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_json_that_breaks_the_schema_is_an_upstream_error(
    upstream: Upstream, stream: bool
) -> None:
    upstream.server.script(Reply(text='{"city": "Paris", "population": "many"}'))
    request = upstream.request("Biggest French city?", response_format=CITY_SCHEMA)
    with pytest.raises(UpstreamError) as caught:
        if stream:
            await upstream.collect(request)
        else:
            await upstream.provider.complete(request, upstream.model)
    assert caught.value.status_code == 502
    assert "population" in caught.value.message and caught.value.code == "invalid_json_output"


async def test_stop_sequence_ends_the_answer(upstream: Upstream) -> None:
    upstream.server.script(Reply(text="one, two, STOP three"))
    response = await upstream.provider.complete(
        upstream.request("Count", stop=["STOP"]), upstream.model
    )
    assert response.choices[0].message.content == "one, two, "
    assert response.choices[0].finish_reason == "stop"
    assert b"STOP" in upstream.server.last.body


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_truncation_at_max_tokens_finishes_with_length(
    upstream: Upstream, stream: bool
) -> None:
    upstream.server.script(Reply(text="a long", finish="length", completion_tokens=2))
    request = upstream.request("Write an essay", max_tokens=2)
    if stream:
        finish = finish_of(await upstream.collect(request))
    else:
        finish = (
            (await upstream.provider.complete(request, upstream.model)).choices[0].finish_reason
        )
    assert finish == "length"
    assert b"2" in upstream.server.last.body


async def test_cached_prompt_tokens_are_reported(upstream: Upstream) -> None:
    if upstream.kind == "ollama":
        pytest.skip("Ollama reports no prompt caching")
    reply = Reply(prompt_tokens=1000, completion_tokens=10, cached_tokens=800)
    upstream.server.script(reply, reply)
    response = await upstream.provider.complete(upstream.request("Hi"), upstream.model)
    assert response.usage.prompt_tokens == 1000 and response.usage.cached_tokens == 800
    final = (await upstream.collect(upstream.request("Hi")))[-1]
    assert final.usage.prompt_tokens == 1000 and final.usage.cached_tokens == 800


async def test_n_above_one_is_refused_unless_the_provider_has_it(upstream: Upstream) -> None:
    request = upstream.request("Hi", n=2)
    if "n" not in upstream.provider.refuses:
        response = await upstream.provider.complete(request, upstream.model)
        assert len(response.choices) == 2
        return
    with pytest.raises(InvalidRequestError) as caught:
        await upstream.provider.complete(request, upstream.model)
    assert caught.value.param == "n"


# ------------------------------------------------------------------------------ images


@pytest.mark.parametrize("where", ["data", "http"])
async def test_image_parts_reach_the_model(upstream: Upstream, where: str) -> None:
    url = (
        "data:image/png;base64," + base64.b64encode(PNG).decode()
        if where == "data"
        else f"{upstream.server.url}/files/cat.png"
    )
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    response = await upstream.provider.complete(
        upstream.request({"role": "user", "content": parts}), upstream.model
    )
    assert response.choices[0].message.content
    body = upstream.server.last.body
    # Either the bytes went up (base64), or the URL did, for providers that fetch themselves.
    assert base64.b64encode(PNG) in body or url.encode() in body


async def test_images_for_a_model_without_vision_are_a_400_naming_messages(
    upstream: Upstream,
) -> None:
    parts = [{"type": "image_url", "image_url": {"url": f"{upstream.server.url}/files/cat.png"}}]
    model = upstream.with_model(capabilities=["chat", "streaming"])
    with pytest.raises(InvalidRequestError) as caught:
        await upstream.provider.complete(
            upstream.request({"role": "user", "content": parts}), model
        )
    assert caught.value.param == "messages" and caught.value.status_code == 400
    assert upstream.server.received == []


# ------------------------------------------------------------------------------ embeddings


async def test_embeddings_as_floats_and_as_base64(upstream: Upstream) -> None:
    if upstream.embed_model is None:
        with pytest.raises(InvalidRequestError):
            await upstream.provider.embed(EmbeddingRequest(model="x", input="hi"), upstream.model)
        return
    model = upstream.embed_model
    floats = await upstream.provider.embed(
        EmbeddingRequest(model=model.name, input=["first text", "second text"], dimensions=256),
        model,
    )
    assert floats.model == model.name
    assert [e.index for e in floats.data] == [0, 1]
    assert all(len(e.embedding) == 256 for e in floats.data)
    assert floats.usage.prompt_tokens > 0
    assert b"256" in upstream.server.last.body  # dimensions went up

    encoded = await upstream.provider.embed(
        EmbeddingRequest(
            model=model.name,
            input=["first text", "second text"],
            dimensions=256,
            encoding_format="base64",
        ),
        model,
    )
    for as_float, as_base64 in zip(floats.data, encoded.data, strict=True):
        raw = base64.b64decode(as_base64.embedding)
        assert list(struct.unpack("<256f", raw)) == pytest.approx(as_float.embedding)


# ------------------------------------------------------------------------------ OpenAI's schema


async def test_responses_and_chunks_match_openais_published_schema(upstream: Upstream) -> None:
    import orjson

    from gateway.wire import dump
    from tests.openapi import validate

    calls = [ToolUse("get_weather", {"city": "Paris"})]
    upstream.server.script(
        Reply(text="Hi.", cached_tokens=2),
        Reply(text="", tool_calls=calls),
        Reply(text="Hi there.", cached_tokens=2),
        Reply(text="", tool_calls=calls),
    )
    for _ in range(2):
        response = await upstream.provider.complete(
            upstream.request("Hi", tools=[WEATHER_TOOL]), upstream.model
        )
        validate(orjson.loads(dump(response)), "CreateChatCompletionResponse")
    for _ in range(2):
        for chunk in await upstream.collect(upstream.request("Hi", tools=[WEATHER_TOOL])):
            validate(orjson.loads(dump(chunk)), "CreateChatCompletionStreamResponse")
    if upstream.embed_model is not None:
        embedded = await upstream.provider.embed(
            EmbeddingRequest(model="e", input=["a"], dimensions=256), upstream.embed_model
        )
        validate(orjson.loads(dump(embedded)), "CreateEmbeddingResponse")
