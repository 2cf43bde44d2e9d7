"""`/v1/responses` driven by the official `openai` SDK's `client.responses`, routed to a sim, an
OpenAI-type and an Anthropic-type model; every response and stream event is validated against
the Responses schemas of OpenAI's OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import orjson
import pytest

from gateway.server.local import LocalGateway
from tests.openapi import validate
from tests.protocol_servers import Reply, ToolUse
from tests.protocol_servers.base import signature_of

from .conftest import MODELS, TENANT_B, Upstreams, openai_client

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}

# Each event type -> its component schema in OpenAI's document.
EVENT_SCHEMAS = {
    "response.created": "ResponseCreatedEvent",
    "response.in_progress": "ResponseInProgressEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent",
    "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent",
    "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent",
    "response.output_text.done": "ResponseTextDoneEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneEvent",
    "response.completed": "ResponseCompletedEvent",
    "response.incomplete": "ResponseIncompleteEvent",
    "response.failed": "ResponseFailedEvent",
    "error": "ResponseErrorEvent",
}


def checked(raw: Any) -> dict[str, Any]:
    """The JSON of a raw SDK response, validated as a `Response`."""
    body = orjson.loads(raw.content)
    validate(body, "Response")
    return body


def checked_events(events: list[Any]) -> list[str]:
    """Validate each streamed event against its schema (and `ResponseStreamEvent`)."""
    for i, event in enumerate(events):
        payload = event.model_dump(mode="json", exclude_unset=True)
        validate(payload, EVENT_SCHEMAS[event.type])
        validate(payload, "ResponseStreamEvent")
        assert event.sequence_number == i
    return [event.type for event in events]


def script(upstreams: Upstreams, model: str, *replies: Reply) -> None:
    kind = MODELS.get(model, "anthropic")
    if kind == "openai":
        upstreams.openai.script(*replies)
    elif kind == "anthropic":
        upstreams.anthropic.script(*replies)


@pytest.mark.parametrize("model", MODELS)
async def test_plain_response(oai: openai.AsyncOpenAI, model: str) -> None:
    raw = await oai.responses.with_raw_response.create(model=model, input="Say hello")
    checked(raw)
    response = raw.parse()
    assert response.object == "response" and response.status == "completed"
    assert response.model == model
    assert response.output_text
    assert response.output[0].type == "message"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert raw.headers["x-llmgw-model"] == model


@pytest.mark.parametrize("model", MODELS)
async def test_streaming_events_follow_the_schema(oai: openai.AsyncOpenAI, model: str) -> None:
    stream = await oai.responses.create(model=model, input="Say hello", stream=True)
    events = [event async for event in stream]
    kinds = checked_events(events)
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert final.output_text == deltas
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
async def test_instructions_reach_the_upstream(
    oai: openai.AsyncOpenAI, upstreams: Upstreams, model: str
) -> None:
    await oai.responses.create(model=model, instructions="Be terse.", input="Say hello")
    if MODELS[model] == "openai":
        assert upstreams.openai.last_json()["messages"][0] == {
            "role": "system",
            "content": "Be terse.",
        }
    if MODELS[model] == "anthropic":
        assert upstreams.anthropic.last_json()["system"][0]["text"] == "Be terse."


@pytest.mark.parametrize("model", MODELS)
async def test_function_tools_with_outputs(
    oai: openai.AsyncOpenAI, upstreams: Upstreams, model: str
) -> None:
    script(
        upstreams,
        model,
        Reply(tool_calls=[ToolUse("get_weather", {"city": "Paris"})]),
        Reply(text="Sunny in Paris."),
    )
    question = [{"role": "user", "content": "Weather in Paris?"}]
    raw = await oai.responses.with_raw_response.create(
        model=model, input=question, tools=[WEATHER], store=False
    )
    checked(raw)
    first = raw.parse()
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and "city" in json.loads(call.arguments)
    follow_up = [
        *question,
        {
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
        },
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"},
    ]
    raw = await oai.responses.with_raw_response.create(
        model=model, input=follow_up, tools=[WEATHER], store=False
    )
    checked(raw)
    assert raw.parse().output_text
    if MODELS[model] == "openai":
        sent = upstreams.openai.last_json()["messages"]
        assert sent[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny, 21C"}
    if MODELS[model] == "anthropic":
        sent = upstreams.anthropic.last_json()["messages"]
        assert sent[-1]["content"][0]["type"] == "tool_result"


@pytest.mark.parametrize("model", ["gpt-chat", "sim-chat"])
async def test_streamed_function_call(
    oai: openai.AsyncOpenAI, upstreams: Upstreams, model: str
) -> None:
    script(upstreams, model, Reply(tool_calls=[ToolUse("get_weather", {"city": "Oslo"})]))
    stream = await oai.responses.create(
        model=model, input="Weather in Oslo?", tools=[WEATHER], stream=True
    )
    events = [event async for event in stream]
    kinds = checked_events(events)
    assert "response.function_call_arguments.delta" in kinds
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert done.name == "get_weather" and "city" in json.loads(done.arguments)
    assert events[-1].response.output[-1].type == "function_call"


@pytest.mark.parametrize("model", MODELS)
async def test_structured_output(oai: openai.AsyncOpenAI, upstreams: Upstreams, model: str) -> None:
    script(upstreams, model, Reply(text='{"city": "Paris", "temperature": 21}'))
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temperature": {"type": "integer"}},
        "required": ["city", "temperature"],
        "additionalProperties": False,
    }
    raw = await oai.responses.with_raw_response.create(
        model=model,
        input="Weather in Paris as JSON",
        text={
            "format": {"type": "json_schema", "name": "weather", "schema": schema, "strict": True}
        },
    )
    body = checked(raw)
    assert body["text"]["format"]["type"] == "json_schema"
    answer = json.loads(raw.parse().output_text)
    assert set(answer) == {"city", "temperature"}
    if MODELS[model] == "openai":
        sent = upstreams.openai.last_json()["response_format"]
        assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "weather"


@pytest.mark.parametrize("model", MODELS)
async def test_three_turns_by_previous_response_id(
    oai: openai.AsyncOpenAI, upstreams: Upstreams, model: str
) -> None:
    script(upstreams, model, Reply(text="Hi Ada."), Reply(text="Noted."), Reply(text="Ada."))
    first = await oai.responses.create(model=model, input="My name is Ada.")
    second = await oai.responses.create(
        model=model, input="I like tea.", previous_response_id=first.id
    )
    raw = await oai.responses.with_raw_response.create(
        model=model, input="What is my name?", previous_response_id=second.id
    )
    third = checked(raw)
    assert third["previous_response_id"] == second.id
    if MODELS[model] == "openai":
        sent = upstreams.openai.last_json()["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant"] * 2 + ["user"]
        assert sent[0]["content"][0]["text"] == "My name is Ada."
        assert sent[1]["content"] == "Hi Ada."
        assert sent[4]["content"][0]["text"] == "What is my name?"
    if MODELS[model] == "anthropic":
        sent = upstreams.anthropic.last_json()["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant"] * 2 + ["user"]


async def test_streamed_turn_is_kept_for_the_next(
    oai: openai.AsyncOpenAI, upstreams: Upstreams
) -> None:
    upstreams.openai.script(Reply(text="Hi Ada."), Reply(text="Ada."))
    stream = await oai.responses.create(model="gpt-chat", input="My name is Ada.", stream=True)
    events = [event async for event in stream]
    first = events[-1].response
    await oai.responses.create(model="gpt-chat", input="My name?", previous_response_id=first.id)
    sent = upstreams.openai.last_json()["messages"]
    assert sent[1] == {"role": "assistant", "content": "Hi Ada."}


async def test_retrieve_input_items_and_delete(oai: openai.AsyncOpenAI) -> None:
    created = await oai.responses.create(model="sim-chat", input="Say hello")
    raw = await oai.responses.with_raw_response.retrieve(created.id)
    kept = checked(raw)
    assert kept["id"] == created.id and kept["output"][0]["content"][0]["text"]
    items = await oai.responses.input_items.with_raw_response.list(created.id)
    page = orjson.loads(items.content)
    validate(page, "ResponseItemList")
    assert page["data"][0]["content"][0] == {"type": "input_text", "text": "Say hello"}
    deleted = await oai.responses.delete(created.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        await oai.responses.retrieve(created.id)


async def test_store_false_is_not_kept(oai: openai.AsyncOpenAI) -> None:
    created = await oai.responses.create(model="sim-chat", input="Say hello", store=False)
    with pytest.raises(openai.NotFoundError):
        await oai.responses.retrieve(created.id)


async def test_reasoning_on_an_anthropic_model_round_trips(
    oai: openai.AsyncOpenAI, upstreams: Upstreams
) -> None:
    thought = "Call the weather tool."
    upstreams.anthropic.script(
        Reply(thinking=thought, tool_calls=[ToolUse("get_weather", {"city": "Rome"})]),
        Reply(text="Warm."),
    )
    raw = await oai.responses.with_raw_response.create(
        model="claude-thinking",
        input="Weather in Rome?",
        tools=[WEATHER],
        reasoning={"effort": "low"},
    )
    first = checked(raw)
    assert first["output"][0]["type"] == "reasoning"
    assert first["output"][0]["content"][0]["text"] == thought
    assert upstreams.anthropic.last_json()["output_config"]["effort"] == "low"
    call = first["output"][-1]
    await oai.responses.create(
        model="claude-thinking",
        previous_response_id=first["id"],
        input=[{"type": "function_call_output", "call_id": call["call_id"], "output": "25C"}],
        tools=[WEATHER],
    )
    # The signed thinking went back with the tool-use turn, as the upstream demands.
    turn = upstreams.anthropic.last_json()["messages"][1]["content"][0]
    assert turn["type"] == "thinking" and turn["signature"] == signature_of(thought)


# ---------------------------------------------------------------- errors and tenancy


async def test_unknown_previous_response_id_is_a_404(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await oai.responses.create(
            model="sim-chat", input="Hi", previous_response_id="resp_doesnotexist"
        )
    error = caught.value.body
    validate({"error": error}, "ErrorResponse")
    assert error["param"] == "previous_response_id"
    assert error["code"] == "previous_response_not_found"


async def test_another_tenants_response_is_not_found(
    oai: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    mine = await oai.responses.create(model="sim-chat", input="Secret plans.")
    other = openai_client(http, TENANT_B)
    with pytest.raises(openai.NotFoundError):
        await other.responses.create(model="sim-chat", input="Hi", previous_response_id=mine.id)
    with pytest.raises(openai.NotFoundError):
        await other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        await other.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        await other.responses.delete(mine.id)
    assert (await oai.responses.retrieve(mine.id)).id == mine.id


async def test_bad_input_is_openai_shaped(http: httpx.AsyncClient) -> None:
    headers = {"authorization": f"Bearer {TENANT_B}"}
    cases = [
        ({"model": "sim-chat", "input": "Hi", "bogus": 1}, "bogus"),
        ({"model": "sim-chat"}, "input"),
        ({"model": "sim-chat", "input": "Hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"model": "sim-chat", "input": "Hi", "background": True}, "background"),
    ]
    for body, param in cases:
        response = await http.post("/v1/responses", json=body, headers=headers)
        assert response.status_code == 400, body
        validate(response.json(), "ErrorResponse")
        assert response.json()["error"]["param"] == param


async def test_same_pipeline_usage_and_audit(
    oai: openai.AsyncOpenAI, gateway: LocalGateway
) -> None:
    await oai.responses.create(model="auto", input="Hi", extra_body={"use_case": "chat"})
    usage = gateway.recorder.usages[-1]
    assert usage.endpoint == "responses" and usage.tenant == "acme"
    assert usage.model == "sim-chat" and usage.use_case == "chat"
    assert gateway.recorder.audits[-1].action == "responses"


async def test_a_stream_cut_upstream_fails_the_response(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.responses.create(model="sim-cut", input="Hello", stream=True)
    events = [event async for event in stream]
    kinds = checked_events(events)
    assert kinds[-2:] == ["error", "response.failed"]
    assert events[-1].response.status == "failed"


async def test_streamed_reasoning_is_a_reasoning_item(
    oai: openai.AsyncOpenAI, upstreams: Upstreams
) -> None:
    upstreams.anthropic.script(Reply(thinking="Brief thought.", text="Hi."))
    stream = await oai.responses.create(
        model="claude-thinking", input="Hello", reasoning={"effort": "low"}, stream=True
    )
    events = [event async for event in stream]
    checked_events(events)
    final = events[-1].response
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].content[0].text == "Brief thought."
    assert final.output_text == "Hi."


async def test_a_conversation_moves_between_providers(
    oai: openai.AsyncOpenAI, upstreams: Upstreams
) -> None:
    """A tool call with thinking on an Anthropic model, its output answered by an OpenAI-type
    model through `previous_response_id`, then a third turn back on Anthropic."""
    upstreams.anthropic.script(
        Reply(thinking="Use the tool.", tool_calls=[ToolUse("get_weather", {"city": "Lima"})]),
        Reply(text="Bye."),
    )
    upstreams.openai.script(Reply(text="Mild in Lima."))
    first = await oai.responses.create(
        model="claude-thinking", input="Weather in Lima?", tools=[WEATHER]
    )
    call = first.output[-1]
    second = await oai.responses.create(
        model="gpt-chat",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C"}],
        tools=[WEATHER],
    )
    assert second.output_text == "Mild in Lima."
    sent = upstreams.openai.last_json()["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert all("thinking_blocks" not in m for m in sent)
    raw = await oai.responses.with_raw_response.create(
        model="claude-thinking", previous_response_id=second.id, input="Thanks!", tools=[WEATHER]
    )
    assert checked(raw)["output"][0]["content"][0]["text"] == "Bye."
    turns = upstreams.anthropic.last_json()["messages"]
    assert turns[1]["content"][0]["type"] == "thinking"
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant", "user"]
