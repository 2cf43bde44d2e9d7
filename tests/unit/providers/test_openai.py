"""The OpenAI adapter: what goes over the wire to an OpenAI-compatible upstream."""

from __future__ import annotations

import pytest

from gateway.config import ProviderConfig
from gateway.errors import UpstreamError
from gateway.providers.openai import OpenAIProvider
from tests.protocol_servers import Reply
from tests.unit.providers.conftest import Upstream


async def test_requests_carry_the_key_the_upstream_model_and_every_parameter(
    openai_upstream: Upstream,
) -> None:
    request = openai_upstream.request(
        {"role": "developer", "content": "Be exact."},
        "Hi",
        temperature=0,
        top_p=0.5,
        max_completion_tokens=50,
        seed=7,
        user="user-1",
        stop=["END"],
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        tool_choice={"type": "function", "function": {"name": "f"}},
        parallel_tool_calls=False,
        response_format={"type": "json_object"},
        use_case="chat",
        route={"strategy": "cost"},
    )
    openai_upstream.server.script(Reply(text='{"a": 1}'))
    await openai_upstream.provider.complete(request, openai_upstream.model)
    received = openai_upstream.server.last
    body = received.json()
    assert received.headers["authorization"] == "Bearer sk-test-openai"
    assert received.path == "/v1/chat/completions"
    assert body["model"] == "gpt-test"
    assert body["messages"][0] == {"role": "developer", "content": "Be exact."}
    assert body["temperature"] == 0 and body["top_p"] == 0.5 and body["seed"] == 7
    assert body["max_completion_tokens"] == 50 and body["user"] == "user-1"
    assert body["stop"] == ["END"] and body["parallel_tool_calls"] is False
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert body["response_format"] == {"type": "json_object"}
    # llmgw's own fields never go upstream
    assert "use_case" not in body and "route" not in body and "stream" not in body


async def test_streams_always_ask_for_usage(openai_upstream: Upstream) -> None:
    chunks = await openai_upstream.collect(openai_upstream.request("Hi"))
    assert openai_upstream.server.last.json()["stream_options"] == {"include_usage": True}
    assert chunks[-1].usage is not None


async def test_organization_and_project_headers(openai_upstream: Upstream) -> None:
    config = openai_upstream.provider.config.model_copy(
        update={"organization": "org-1", "project": "proj-1"}
    )
    provider = OpenAIProvider(config)
    try:
        await provider.complete(openai_upstream.request("Hi"), openai_upstream.model)
    finally:
        await provider.aclose()
    headers = openai_upstream.server.last.headers
    assert headers["openai-organization"] == "org-1" and headers["openai-project"] == "proj-1"


async def test_content_filter_finish_reason_is_kept(openai_upstream: Upstream) -> None:
    openai_upstream.server.script(Reply(text="", finish="content_filter"))
    response = await openai_upstream.provider.complete(
        openai_upstream.request("Hi"), openai_upstream.model
    )
    assert response.choices[0].finish_reason == "content_filter"


async def test_a_missing_key_is_a_clear_502_without_calling_upstream(
    openai_upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMGW_TEST_OPENAI_KEY")
    provider = OpenAIProvider(
        ProviderConfig(name="nokey", type="openai", api_key_env="LLMGW_TEST_OPENAI_KEY")
    )
    with pytest.raises(UpstreamError) as caught:
        await provider.complete(openai_upstream.request("Hi"), openai_upstream.model)
    assert "LLMGW_TEST_OPENAI_KEY" in caught.value.message
    assert caught.value.code == "upstream_auth_failed"
    await provider.aclose()


async def test_embeddings_pass_token_ids_and_user(openai_upstream: Upstream) -> None:
    from gateway.wire import EmbeddingRequest

    model = openai_upstream.embed_model
    await openai_upstream.provider.embed(
        EmbeddingRequest(model=model.name, input=[[1, 2, 3]], user="u-1"), model
    )
    body = openai_upstream.server.last.json()
    assert body["input"] == [[1, 2, 3]] and body["user"] == "u-1"
    assert body["model"] == "text-embedding-test" and body["encoding_format"] == "float"


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_refusal_under_structured_outputs_is_passed_on_not_checked(
    openai_upstream: Upstream, stream: bool
) -> None:
    openai_upstream.server.script(Reply(refusal="I can't help with that."))
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    request = openai_upstream.request(
        "Hi",
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
    )
    if stream:
        chunks = await openai_upstream.collect(request)
        refusal = "".join(c.choices[0].delta.refusal or "" for c in chunks if c.choices)
    else:
        response = await openai_upstream.provider.complete(request, openai_upstream.model)
        assert response.choices[0].message.content is None
        refusal = response.choices[0].message.refusal
    assert refusal == "I can't help with that."
