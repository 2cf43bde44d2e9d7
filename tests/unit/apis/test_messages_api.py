"""`/v1/messages` driven by the official `anthropic` SDK, routed to a sim, an OpenAI-type and an
Anthropic-type model: the same pipeline as chat completions, Anthropic's shapes throughout."""

from __future__ import annotations

import base64

import anthropic
import httpx
import httpx2
import orjson
import pytest

from gateway.server.local import LocalGateway
from tests.protocol_servers import Reply, ToolUse
from tests.protocol_servers.base import signature_of
from tests.unit.providers.conftest import PNG

from .conftest import MODELS, TENANT_A, Upstreams, anthropic_client

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}

HELLO = {"role": "user", "content": "Say hello"}


@pytest.mark.parametrize("model", MODELS)
async def test_plain_message(claude: anthropic.AsyncAnthropic, model: str) -> None:
    message = await claude.messages.create(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "Say hello"}]
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.model == model
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
async def test_streaming_has_anthropics_event_sequence(
    claude: anthropic.AsyncAnthropic, http: httpx.AsyncClient, model: str
) -> None:
    async with claude.messages.stream(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "Say hello"}]
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text and final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    # On the wire: Anthropic's full sequence, `ping` included.
    body = {"model": model, "max_tokens": 64, "stream": True, "messages": [HELLO]}
    headers = {"x-api-key": TENANT_A, "anthropic-version": "2023-06-01"}
    async with http.stream("POST", "/v1/messages", json=body, headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = b"".join([chunk async for chunk in response.aiter_bytes()])
    events = [e for e in raw.decode().split("\n\n") if e.strip()]
    names = [e.split("\n")[0].removeprefix("event: ") for e in events]
    for event, name in zip(events, names, strict=True):
        assert orjson.loads(event.split("\n")[1].removeprefix("data: "))["type"] == name
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


@pytest.mark.parametrize("model", MODELS)
async def test_system_prompt_reaches_the_upstream(
    claude: anthropic.AsyncAnthropic, upstreams: Upstreams, model: str
) -> None:
    message = await claude.messages.create(
        model=model,
        max_tokens=64,
        system=[{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "Say hello"}],
    )
    assert message.content[0].text
    if MODELS[model] == "anthropic":
        sent = upstreams.anthropic.last_json()
        # Natively: the system blocks as the client wrote them, cache control kept.
        assert sent["system"] == [
            {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}
        ]
        assert sent["model"] == "claude-test"
    elif MODELS[model] == "openai":
        sent = upstreams.openai.last_json()
        assert sent["messages"][0]["role"] == "system"
        assert "You are terse." in str(sent["messages"][0]["content"])


@pytest.mark.parametrize("model", MODELS)
async def test_tools_with_a_multi_turn_tool_result(
    claude: anthropic.AsyncAnthropic, upstreams: Upstreams, model: str
) -> None:
    kind = MODELS[model]
    call = ToolUse("get_weather", {"city": "Paris"}, id="toolu_01")
    server = {"openai": upstreams.openai, "anthropic": upstreams.anthropic}.get(kind)
    if server is not None:
        server.script(Reply(tool_calls=[call]), Reply(text="It is sunny in Paris."))
    question = {"role": "user", "content": "Weather in Paris?"}
    first = await claude.messages.create(
        model=model, max_tokens=128, tools=[WEATHER], messages=[question]
    )
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and isinstance(use.input, dict)
    second = await claude.messages.create(
        model=model,
        max_tokens=128,
        tools=[WEATHER],
        messages=[
            question,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21C"}
                ],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text"
    if kind == "openai":
        sent = upstreams.openai.last_json()["messages"]
        assert sent[-1] == {"role": "tool", "tool_call_id": use.id, "content": "sunny, 21C"}
        assert sent[-2]["tool_calls"][0]["function"]["name"] == "get_weather"
    if kind == "anthropic":
        sent = upstreams.anthropic.last_json()["messages"]
        assert sent[-1]["content"][0]["type"] == "tool_result"


async def test_streamed_tool_use_is_an_input_json_block(
    claude: anthropic.AsyncAnthropic, upstreams: Upstreams
) -> None:
    upstreams.openai.script(Reply(tool_calls=[ToolUse("get_weather", {"city": "Oslo"})]))
    async with claude.messages.stream(
        model="gpt-chat",
        max_tokens=128,
        tools=[WEATHER],
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert "input_json" in kinds
    assert final.stop_reason == "tool_use"
    use = final.content[-1]
    assert use.type == "tool_use" and use.input == {"city": "Oslo"}


async def test_thinking_round_trips_on_an_anthropic_model(
    claude: anthropic.AsyncAnthropic, upstreams: Upstreams
) -> None:
    thought = "The user wants the weather; call the tool."
    upstreams.anthropic.script(
        Reply(thinking=thought, tool_calls=[ToolUse("get_weather", {"city": "Rome"})]),
        Reply(text="Warm in Rome."),
    )
    question = {"role": "user", "content": "Weather in Rome?"}
    thinking = {"type": "enabled", "budget_tokens": 2048}
    first = await claude.messages.create(
        model="claude-thinking",
        max_tokens=4096,
        thinking=thinking,
        tools=[WEATHER],
        messages=[question],
    )
    assert first.content[0].type == "thinking"
    assert first.content[0].thinking == thought
    assert first.content[0].signature == signature_of(thought)
    assert upstreams.anthropic.last_json()["thinking"] == thinking
    use = first.content[-1]
    # The signed block goes back as it came: the upstream refuses the turn otherwise.
    second = await claude.messages.create(
        model="claude-thinking",
        max_tokens=4096,
        thinking=thinking,
        tools=[WEATHER],
        messages=[
            question,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "25C"}],
            },
        ],
    )
    assert second.content[0].text == "Warm in Rome."


async def test_streamed_thinking_arrives_as_a_thinking_block(
    claude: anthropic.AsyncAnthropic, upstreams: Upstreams
) -> None:
    upstreams.anthropic.script(Reply(thinking="Short thought.", text="Hi."))
    async with claude.messages.stream(
        model="claude-thinking",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "Hello"}],
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert "thinking" in kinds and "signature" in kinds
    assert final.content[0].type == "thinking" and final.content[0].thinking == "Short thought."
    assert final.content[0].signature == signature_of("Short thought.")
    assert final.content[1].text == "Hi."


async def test_thinking_on_another_provider_is_a_reasoning_effort(
    claude: anthropic.AsyncAnthropic, upstreams: Upstreams
) -> None:
    await claude.messages.create(
        model="gpt-chat",
        max_tokens=64,
        thinking={"type": "enabled", "budget_tokens": 20000},
        messages=[{"role": "user", "content": "Hello"}],
    )
    assert upstreams.openai.last_json()["reasoning_effort"] == "high"


@pytest.mark.parametrize("model", MODELS)
async def test_count_tokens(claude: anthropic.AsyncAnthropic, model: str) -> None:
    counted = await claude.messages.count_tokens(
        model=model,
        system="Be brief.",
        tools=[WEATHER],
        messages=[{"role": "user", "content": "What is the weather like in Paris today?"}],
    )
    assert counted.input_tokens > 10


async def test_images_are_translated_for_other_providers(
    claude: anthropic.AsyncAnthropic, upstreams: Upstreams
) -> None:
    png = base64.b64encode(PNG).decode()
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}}
    await claude.messages.create(
        model="gpt-chat",
        max_tokens=64,
        messages=[{"role": "user", "content": [image, {"type": "text", "text": "What is it?"}]}],
    )
    parts = upstreams.openai.last_json()["messages"][0]["content"]
    assert parts[0]["image_url"]["url"] == f"data:image/png;base64,{png}"
    assert parts[1] == {"type": "text", "text": "What is it?"}


# ---------------------------------------------------------------- errors, auth, pipeline


async def test_missing_max_tokens_is_an_anthropic_400(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/messages",
        headers={"x-api-key": TENANT_A, "anthropic-version": "2023-06-01"},
        json={"model": "sim-chat", "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error"
    assert body["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }


async def test_sdk_raises_its_own_errors(
    claude: anthropic.AsyncAnthropic, http2: httpx2.AsyncClient
) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        await claude.messages.create(
            model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.body["error"]["type"] == "not_found_error"
    bad = anthropic_client(http2, key="sk-wrong-key-000000000000")
    with pytest.raises(anthropic.AuthenticationError) as caught:
        await bad.messages.create(
            model="sim-chat", max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.body["error"]["type"] == "authentication_error"


async def test_x_api_key_authenticates(http: httpx.AsyncClient) -> None:
    body = {"model": "sim-chat", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]}
    response = await http.post(
        "/v1/messages",
        headers={"x-api-key": TENANT_A, "anthropic-version": "2023-06-01"},
        json=body,
    )
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "message"


async def test_document_blocks_are_refused_off_anthropic(
    claude: anthropic.AsyncAnthropic, upstreams: Upstreams
) -> None:
    document = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "Some notes."},
    }
    content = [document, {"type": "text", "text": "Summarise."}]
    with pytest.raises(anthropic.BadRequestError) as caught:
        await claude.messages.create(
            model="gpt-chat", max_tokens=64, messages=[{"role": "user", "content": content}]
        )
    assert caught.value.body["type"] == "error"
    assert "document" in caught.value.body["error"]["message"]
    # An Anthropic model takes them as sent.
    message = await claude.messages.create(
        model="claude-chat", max_tokens=64, messages=[{"role": "user", "content": content}]
    )
    assert message.content[0].text
    assert upstreams.anthropic.last_json()["messages"][0]["content"][0]["type"] == "document"


async def test_same_pipeline_usage_audit_and_use_cases(
    claude: anthropic.AsyncAnthropic, gateway: LocalGateway
) -> None:
    raw = await claude.messages.with_raw_response.create(
        model="auto",
        max_tokens=32,
        messages=[{"role": "user", "content": "Hi"}],
        extra_body={"use_case": "chat"},
    )
    message = await raw.parse()
    assert message.model == "sim-chat"
    assert raw.headers["x-llmgw-model"] == "sim-chat"
    assert float(raw.headers["x-llmgw-cost-usd"]) >= 0
    usage = gateway.recorder.usages[-1]
    assert usage.endpoint == "messages" and usage.tenant == "acme"
    assert usage.use_case == "chat" and usage.completion_tokens == message.usage.output_tokens
    audit = gateway.recorder.audits[-1]
    assert audit.action == "messages" and audit.path == "/v1/messages"


async def test_streamed_call_is_metered(
    claude: anthropic.AsyncAnthropic, gateway: LocalGateway
) -> None:
    async with claude.messages.stream(
        model="sim-chat", max_tokens=32, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        final = await stream.get_final_message()
    usage = gateway.recorder.usages[-1]
    assert usage.stream and usage.endpoint == "messages"
    assert usage.completion_tokens == final.usage.output_tokens == 9


async def test_upstream_failure_is_anthropic_shaped(
    claude: anthropic.AsyncAnthropic, upstreams: Upstreams
) -> None:
    from tests.protocol_servers import Failure

    upstreams.openai.script(Reply(failure=Failure("rate_limit", retry_after=3)))
    with pytest.raises(anthropic.RateLimitError) as caught:
        await claude.messages.create(
            model="gpt-chat", max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert orjson.loads(caught.value.response.content)["type"] == "error"


async def test_a_stream_cut_upstream_ends_with_an_error_event(http: httpx.AsyncClient) -> None:
    body = {"model": "sim-cut", "max_tokens": 64, "stream": True, "messages": [HELLO]}
    headers = {"x-api-key": TENANT_A, "anthropic-version": "2023-06-01"}
    async with http.stream("POST", "/v1/messages", json=body, headers=headers) as response:
        raw = b"".join([chunk async for chunk in response.aiter_bytes()])
    events = [e for e in raw.decode().split("\n\n") if e.strip()]
    name, data = events[-1].split("\n")
    assert name == "event: error"
    error = orjson.loads(data.removeprefix("data: "))
    assert error["type"] == "error" and error["error"]["type"] in ("api_error", "overloaded_error")
    assert "message_stop" not in raw.decode()


async def test_server_tools_are_refused_off_anthropic(claude: anthropic.AsyncAnthropic) -> None:
    search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}
    with pytest.raises(anthropic.BadRequestError) as caught:
        await claude.messages.create(
            model="sim-chat", max_tokens=32, tools=[search], messages=[HELLO]
        )
    assert "server tool 'web_search_20250305'" in caught.value.body["error"]["message"]


async def test_unknown_fields_are_refused_by_name(http: httpx.AsyncClient) -> None:
    body = {"model": "sim-chat", "max_tokens": 8, "messages": [HELLO], "temprature": 1}
    response = await http.post("/v1/messages", json=body, headers={"x-api-key": TENANT_A})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": "temprature: Extra inputs are not permitted",
    }
    counted = await http.post(
        "/v1/messages/count_tokens", json={"model": "sim-chat"}, headers={"x-api-key": TENANT_A}
    )
    assert counted.status_code == 400 and counted.json()["type"] == "error"
    unauthenticated = await http.post("/v1/messages/count_tokens", json=body)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["type"] == "authentication_error"


async def test_a_tool_use_turn_moves_between_providers(
    claude: anthropic.AsyncAnthropic, upstreams: Upstreams
) -> None:
    """Thinking and a tool call from an Anthropic model, the tool result answered by an
    OpenAI-type model, then back to Anthropic: each upstream gets what its API takes."""
    thought = "Use the tool."
    upstreams.anthropic.script(
        Reply(thinking=thought, tool_calls=[ToolUse("get_weather", {"city": "Kyiv"})]),
        Reply(text="Thanks."),
    )
    upstreams.openai.script(Reply(text="Cold in Kyiv."))
    question = {"role": "user", "content": "Weather in Kyiv?"}
    first = await claude.messages.create(
        model="claude-thinking", max_tokens=2048, tools=[WEATHER], messages=[question]
    )
    use = first.content[-1]
    history = [
        question,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "-3C"}],
        },
    ]
    second = await claude.messages.create(
        model="gpt-chat", max_tokens=256, tools=[WEATHER], messages=history
    )
    assert second.content[0].text == "Cold in Kyiv."
    sent = upstreams.openai.last_json()["messages"]
    assert sent[1]["tool_calls"][0]["id"] == use.id
    assert all("thinking_blocks" not in m for m in sent)  # no OpenAI field takes them
    history += [
        {"role": "assistant", "content": [b.model_dump() for b in second.content]},
        {"role": "user", "content": "Thanks!"},
    ]
    third = await claude.messages.create(
        model="claude-thinking", max_tokens=2048, tools=[WEATHER], messages=history
    )
    assert third.content[0].text == "Thanks."
    assert upstreams.anthropic.last_json()["messages"][1]["content"][0]["type"] == "thinking"


async def test_betas_go_to_anthropic_and_errors_read_as_text_elsewhere(
    claude: anthropic.AsyncAnthropic, upstreams: Upstreams
) -> None:
    upstreams.anthropic.script(Reply(tool_calls=[ToolUse("get_weather", {"city": "Bern"})]))
    question = {"role": "user", "content": "Weather in Bern?"}
    first = await claude.beta.messages.create(
        model="claude-chat",
        max_tokens=128,
        tools=[WEATHER],
        messages=[question],
        betas=["context-management-2025-06-27"],
    )
    assert upstreams.anthropic.last.headers["anthropic-beta"] == "context-management-2025-06-27"
    use = first.content[-1]
    failed = {"type": "tool_result", "tool_use_id": use.id, "content": "timeout", "is_error": True}
    history = [
        question,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [failed]},
    ]
    await claude.messages.create(model="gpt-chat", max_tokens=64, tools=[WEATHER], messages=history)
    assert upstreams.openai.last_json()["messages"][-1]["content"] == "Error: timeout"
    await claude.messages.create(
        model="claude-chat", max_tokens=64, tools=[WEATHER], messages=history
    )
    assert upstreams.anthropic.last_json()["messages"][-1]["content"][0]["is_error"] is True


async def test_file_sources_are_refused_everywhere(claude: anthropic.AsyncAnthropic) -> None:
    """Files live in the upstream account all tenants share: no tenant names one by id."""
    document = {"type": "document", "source": {"type": "file", "file_id": "file_011abc"}}
    content = [document, {"type": "text", "text": "Summarise."}]
    with pytest.raises(anthropic.BadRequestError) as caught:
        await claude.messages.create(
            model="claude-chat", max_tokens=64, messages=[{"role": "user", "content": content}]
        )
    assert "file sources" in caught.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as caught:
        await claude.messages.create(
            model="claude-chat", max_tokens=64, messages=[HELLO], container="container_011abc"
        )
    assert caught.value.body["error"]["message"].startswith("container:")
