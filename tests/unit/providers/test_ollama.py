"""The Ollama adapter: what goes over the wire to Ollama's native API, and model discovery."""

from __future__ import annotations

import base64

import pytest

from gateway.errors import InvalidRequestError
from tests.protocol_servers import Reply, ToolUse
from tests.unit.providers.conftest import PNG, Upstream

TOOL = {
    "type": "function",
    "function": {"name": "lookup", "description": "Look up", "parameters": {"type": "object"}},
}


async def test_options_format_and_messages(ollama_upstream: Upstream) -> None:
    ollama_upstream.server.script(Reply(text='{"a": 1}'))
    request = ollama_upstream.request(
        {"role": "developer", "content": "Be exact."},
        "Hi",
        temperature=0,
        top_p=0.5,
        max_tokens=64,
        seed=3,
        stop=["END"],
        presence_penalty=0.1,
        frequency_penalty=0.2,
        response_format={"type": "json_object"},
    )
    await ollama_upstream.provider.complete(request, ollama_upstream.model)
    received = ollama_upstream.server.last
    body = received.json()
    assert received.path == "/api/chat"
    assert body["model"] == "llama3.2" and body["stream"] is False
    assert body["format"] == "json"
    assert body["options"] == {
        "temperature": 0,
        "top_p": 0.5,
        "num_predict": 64,
        "stop": ["END"],
        "seed": 3,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
    }
    assert body["messages"] == [
        {"role": "system", "content": "Be exact."},
        {"role": "user", "content": "Hi"},
    ]


async def test_json_schema_is_the_format(ollama_upstream: Upstream) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    ollama_upstream.server.script(Reply(text='{"n": 1}'))
    await ollama_upstream.provider.complete(
        ollama_upstream.request(
            "n?",
            response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
        ),
        ollama_upstream.model,
    )
    assert ollama_upstream.server.last.json()["format"] == schema


async def test_tool_calls_carry_object_arguments_and_results_carry_the_tool_name(
    ollama_upstream: Upstream,
) -> None:
    request = ollama_upstream.request(
        "Look it up",
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "found"},
        tools=[TOOL],
    )
    await ollama_upstream.provider.complete(request, ollama_upstream.model)
    body = ollama_upstream.server.last.json()
    assert body["messages"][1]["tool_calls"] == [
        {"function": {"name": "lookup", "arguments": {"q": "x"}}}
    ]
    assert body["messages"][2] == {"role": "tool", "content": "found", "tool_name": "lookup"}
    assert body["tools"] == [TOOL]


async def test_tool_calls_in_answers_get_ids(ollama_upstream: Upstream) -> None:
    ollama_upstream.server.script(Reply(text="", tool_calls=[ToolUse("lookup", {"q": "y"})]))
    response = await ollama_upstream.provider.complete(
        ollama_upstream.request("Hi", tools=[TOOL]), ollama_upstream.model
    )
    call = response.choices[0].message.tool_calls[0]
    assert call.id.startswith("call_") and call.function.arguments == '{"q": "y"}'


async def test_images_go_as_base64_and_http_urls_are_fetched(ollama_upstream: Upstream) -> None:
    url = f"{ollama_upstream.server.url}/files/cat.png"
    parts = [{"type": "text", "text": "What?"}, {"type": "image_url", "image_url": {"url": url}}]
    await ollama_upstream.provider.complete(
        ollama_upstream.request({"role": "user", "content": parts}), ollama_upstream.model
    )
    message = ollama_upstream.server.last.json()["messages"][0]
    assert message == {
        "role": "user",
        "content": "What?",
        "images": [base64.b64encode(PNG).decode()],
    }


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("tool_choice", "required"),
        ("tool_choice", {"type": "function", "function": {"name": "lookup"}}),
        ("parallel_tool_calls", False),
        ("user", "u-1"),
        ("logprobs", True),
    ],
)
async def test_what_ollama_cannot_do_is_a_400_naming_it(
    ollama_upstream: Upstream, param: str, value: object
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await ollama_upstream.provider.complete(
            ollama_upstream.request("Hi", tools=[TOOL], **{param: value}), ollama_upstream.model
        )
    assert caught.value.param == param


async def test_tool_choice_none_sends_no_tools(ollama_upstream: Upstream) -> None:
    await ollama_upstream.provider.complete(
        ollama_upstream.request("Hi", tools=[TOOL], tool_choice="none"), ollama_upstream.model
    )
    assert not ollama_upstream.server.last.json().get("tools")


async def test_discover_lists_installed_models_with_context_windows(
    ollama_upstream: Upstream,
) -> None:
    models = {m.name: m for m in await ollama_upstream.provider.discover()}
    assert set(models) == {"llama3.2", "llava:7b", "nomic-embed-text"}
    assert models["llama3.2"].upstream == "llama3.2:latest"
    assert models["llama3.2"].context_window == 131072
    assert "tools" in models["llama3.2"].capabilities
    assert "vision" in models["llava:7b"].capabilities
    assert models["nomic-embed-text"].capabilities == ["embeddings"]
    assert models["nomic-embed-text"].use_cases == []
    assert all(m.provider == ollama_upstream.provider.name for m in models.values())


async def test_an_unknown_model_is_a_404(ollama_upstream: Upstream) -> None:
    from gateway.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError):
        await ollama_upstream.provider.complete(
            ollama_upstream.request("Hi"), ollama_upstream.with_model(upstream="nope")
        )


def _busy_connections(upstream: Upstream) -> list[object]:
    pool = upstream.provider._client._client._transport._pool  # type: ignore[attr-defined]
    return [c for c in pool.connections if not (c.is_idle() or c.is_closed())]


async def test_a_stream_the_consumer_stops_releases_its_connection(
    ollama_upstream: Upstream,
) -> None:
    ollama_upstream.server.script(Reply(text="word " * 400, chunk_chars=3))
    stream = ollama_upstream.provider.stream(ollama_upstream.request("Hi"), ollama_upstream.model)
    await anext(stream)
    await anext(stream)
    assert _busy_connections(ollama_upstream), "the stream holds a connection while read"
    await stream.aclose()
    assert _busy_connections(ollama_upstream) == []
