"""The Anthropic adapter: what goes over the wire to the Messages API."""

from __future__ import annotations

import base64

import pytest

from gateway.errors import InvalidRequestError
from tests.protocol_servers import Reply, ToolUse
from tests.unit.providers.conftest import PNG, Upstream, assistant_turn

TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


async def test_system_and_developer_messages_become_the_system_parameter(
    anthropic_upstream: Upstream,
) -> None:
    request = anthropic_upstream.request(
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": "Answer in French."},
        "Hello",
    )
    await anthropic_upstream.provider.complete(request, anthropic_upstream.model)
    received = anthropic_upstream.server.last
    body = received.json()
    assert body["system"] == [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Answer in French."},
    ]
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert received.headers["anthropic-version"] == "2026-10-21"
    assert received.headers["authorization"] == "Bearer sk-ant-test"
    assert received.path == "/v1/messages"


async def test_max_tokens_defaults_to_the_models_maximum(anthropic_upstream: Upstream) -> None:
    await anthropic_upstream.provider.complete(
        anthropic_upstream.request("Hi"), anthropic_upstream.model
    )
    assert anthropic_upstream.server.last.json()["max_tokens"] == 1024
    await anthropic_upstream.provider.complete(
        anthropic_upstream.request("Hi", max_completion_tokens=77), anthropic_upstream.model
    )
    assert anthropic_upstream.server.last.json()["max_tokens"] == 77


async def test_tool_calls_and_consecutive_results_become_blocks_in_alternating_turns(
    anthropic_upstream: Upstream,
) -> None:
    calls = [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q": "a"}'},
        },
        {
            "id": "toolu_2",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q": "b"}'},
        },
    ]
    request = anthropic_upstream.request(
        "Look up a and b",
        {"role": "assistant", "content": "Looking.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "A"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "B"},
        "Thanks, and now?",
        tools=[TOOL],
    )
    await anthropic_upstream.provider.complete(request, anthropic_upstream.model)
    messages = anthropic_upstream.server.last.json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == [
        {"type": "text", "text": "Looking."},
        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "a"}},
        {"type": "tool_use", "id": "toolu_2", "name": "lookup", "input": {"q": "b"}},
    ]
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "A"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "B"},
        {"type": "text", "text": "Thanks, and now?"},
    ]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "lookup"}},
            None,
            {"type": "tool", "name": "lookup"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ],
)
async def test_tool_choice_and_parallel_tool_calls(
    anthropic_upstream: Upstream, choice: object, parallel: bool | None, expected: dict
) -> None:
    anthropic_upstream.server.script(Reply(tool_calls=[ToolUse("lookup", {})]))
    params = {"tools": [TOOL], "parallel_tool_calls": parallel}
    if choice is not None:
        params["tool_choice"] = choice
    await anthropic_upstream.provider.complete(
        anthropic_upstream.request("Hi", **params), anthropic_upstream.model
    )
    body = anthropic_upstream.server.last.json()
    assert body["tool_choice"] == expected
    assert body["tools"] == [
        {"name": "lookup", "description": "", "input_schema": {"type": "object"}}
    ]


async def test_json_schema_is_native_structured_output(anthropic_upstream: Upstream) -> None:
    anthropic_upstream.server.script(Reply(text='{"n": 3}'))
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    await anthropic_upstream.provider.complete(
        anthropic_upstream.request(
            "n?",
            response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
        ),
        anthropic_upstream.model,
    )
    body = anthropic_upstream.server.last.json()
    assert body["output_config"]["format"]["type"] == "json_schema"
    assert body["output_config"]["format"]["schema"]["properties"] == {"n": {"type": "integer"}}
    assert "tools" not in body


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_json_object_is_emulated_with_an_instruction_and_checked(
    anthropic_upstream: Upstream, stream: bool
) -> None:
    # Current Claude models refuse forced tool use, so no tool is forced: the model is told,
    # and a Markdown fence it still adds is taken off.
    anthropic_upstream.server.script(Reply(text='```json\n{"ok": true}\n```', chunk_chars=4))
    request = anthropic_upstream.request(
        {"role": "system", "content": "Be brief."},
        "JSON please",
        response_format={"type": "json_object"},
        tools=[TOOL],
    )
    if stream:
        chunks = await anthropic_upstream.collect(request)
        contents = [
            c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
        ]
        assert contents == ['{"ok": true}']  # held back, then sent whole once checked
    else:
        response = await anthropic_upstream.provider.complete(request, anthropic_upstream.model)
        assert response.choices[0].message.content == '{"ok": true}'
        assert response.choices[0].finish_reason == "stop"
    body = anthropic_upstream.server.last.json()
    assert "tool_choice" not in body
    assert body["system"][0] == {"type": "text", "text": "Be brief."}
    assert "single JSON object" in body["system"][1]["text"]


async def test_emulated_json_that_is_not_an_object_is_an_upstream_error(
    anthropic_upstream: Upstream,
) -> None:
    from gateway.errors import UpstreamError

    anthropic_upstream.server.script(Reply(text="Sure! Here it is: {}"))
    with pytest.raises(UpstreamError) as caught:
        await anthropic_upstream.provider.complete(
            anthropic_upstream.request("JSON", response_format={"type": "json_object"}),
            anthropic_upstream.model,
        )
    assert caught.value.code == "invalid_json_output"


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("temperature", 0),
        ("temperature", 0.7),
        ("top_p", 0.9),
        ("seed", 1),
        ("presence_penalty", 0.5),
        ("logprobs", True),
        ("metadata", {"k": "v"}),
    ],
)
async def test_parameters_the_api_refuses_are_a_400_naming_them(
    anthropic_upstream: Upstream, param: str, value: object
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await anthropic_upstream.provider.complete(
            anthropic_upstream.request("Hi", **{param: value}), anthropic_upstream.model
        )
    assert caught.value.param == param
    assert anthropic_upstream.server.received == []


async def test_user_becomes_metadata_and_stop_becomes_stop_sequences(
    anthropic_upstream: Upstream,
) -> None:
    await anthropic_upstream.provider.complete(
        anthropic_upstream.request("Hi", user="u-42", stop="END", reasoning_effort="low"),
        anthropic_upstream.model,
    )
    body = anthropic_upstream.server.last.json()
    assert body["metadata"] == {"user_id": "u-42"}
    assert body["stop_sequences"] == ["END"]
    assert body["output_config"] == {"effort": "low"}


async def test_images_go_as_base64_or_url_sources(anthropic_upstream: Upstream) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    http_url = f"{anthropic_upstream.server.url}/files/cat.png"
    parts = [
        {"type": "image_url", "image_url": {"url": data_url}},
        {"type": "image_url", "image_url": {"url": http_url}},
        {"type": "text", "text": "Same?"},
    ]
    await anthropic_upstream.provider.complete(
        anthropic_upstream.request({"role": "user", "content": parts}), anthropic_upstream.model
    )
    content = anthropic_upstream.server.last.json()["messages"][0]["content"]
    assert content[0]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": base64.b64encode(PNG).decode(),
    }
    assert content[1]["source"] == {"type": "url", "url": http_url}
    assert content[2] == {"type": "text", "text": "Same?"}


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
    ],
)
async def test_stop_reasons(anthropic_upstream: Upstream, stop_reason: str, finish: str) -> None:
    anthropic_upstream.server.script(
        Reply(native_finish=stop_reason), Reply(native_finish=stop_reason)
    )
    response = await anthropic_upstream.provider.complete(
        anthropic_upstream.request("Hi"), anthropic_upstream.model
    )
    assert response.choices[0].finish_reason == finish
    chunks = await anthropic_upstream.collect(anthropic_upstream.request("Hi"))
    assert chunks[-2].choices[0].finish_reason == finish


async def test_overloaded_529_is_a_retryable_503(anthropic_upstream: Upstream) -> None:
    from gateway.errors import ServiceUnavailableError
    from tests.protocol_servers import Failure

    anthropic_upstream.server.script(Reply(failure=Failure("overloaded")))
    with pytest.raises(ServiceUnavailableError) as caught:
        await anthropic_upstream.provider.complete(
            anthropic_upstream.request("Hi"), anthropic_upstream.model
        )
    assert caught.value.retryable


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_signed_thinking_goes_back_with_the_tool_use_turn(
    anthropic_upstream: Upstream, stream: bool
) -> None:
    # With thinking on, the API refuses a tool-use turn replayed without its signed thinking:
    # it reaches the client as `thinking_blocks` and is sent back from there.
    model = anthropic_upstream.with_model(upstream="claude-thinking-test")
    anthropic_upstream.server.script(
        Reply(thinking="I should look it up.", text="", tool_calls=[ToolUse("lookup", {"q": 1})]),
        Reply(text="Found it."),
    )
    request = anthropic_upstream.request("Look up 1", tools=[TOOL])
    if stream:
        assistant = assistant_turn(await anthropic_upstream.collect(request, model))
    else:
        first = await anthropic_upstream.provider.complete(request, model)
        assistant = first.choices[0].message.model_dump(exclude_none=True)
    assert assistant["thinking_blocks"][0]["thinking"] == "I should look it up."
    call_id = assistant["tool_calls"][0]["id"]
    follow_up = anthropic_upstream.request(
        "Look up 1",
        assistant,
        {"role": "tool", "tool_call_id": call_id, "content": "1 is one"},
        tools=[TOOL],
    )
    second = await anthropic_upstream.provider.complete(follow_up, model)
    assert second.choices[0].message.content == "Found it."
    assert (
        anthropic_upstream.server.last.json()["messages"][1]["content"][0]["thinking"]
        == "I should look it up."
    )


async def test_a_tool_use_turn_without_its_thinking_is_refused_upstream(
    anthropic_upstream: Upstream,
) -> None:
    model = anthropic_upstream.with_model(upstream="claude-thinking-test")
    calls = [{"id": "t1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]
    request = anthropic_upstream.request(
        "Look up",
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "t1", "content": "found"},
        tools=[TOOL],
    )
    with pytest.raises(InvalidRequestError) as caught:
        await anthropic_upstream.provider.complete(request, model)
    assert "thinking" in caught.value.upstream_detail or "reasoning" in caught.value.upstream_detail
