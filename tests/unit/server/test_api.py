"""The HTTP API in one process, driven by the official `openai` SDK as clients drive it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import openai
import orjson
import pytest

from gateway.auth import hash_key
from gateway.config import parse_config
from gateway.server.api import create_api
from gateway.server.local import LocalGateway, local_gateway
from tests.openapi import validate

KEY = "sk-llmgw-test-admin-key-0123456789"
BASE = "http://gateway.test"

CONFIG = {
    "providers": [
        {"name": "sim", "type": "sim", "sim": {"seed": 3, "output_tokens": 12}},
        {"name": "flaky", "type": "sim", "sim": {"failure_rate": 1.0, "failure_statuses": [503]}},
    ],
    "models": [
        {
            "name": "sim-fast",
            "provider": "sim",
            "aliases": ["fast"],
            "use_cases": ["chat", "summarization", "classification"],
            "capabilities": ["chat", "streaming", "tools", "json_mode"],
            "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            "quality": 0.4,
        },
        {
            "name": "sim-smart",
            "provider": "sim",
            "use_cases": ["chat", "research"],
            "capabilities": ["chat", "streaming", "tools", "vision"],
            "context_window": 100000,
            "price": {"input_per_mtok": 5.0, "output_per_mtok": 15.0},
            "quality": 0.9,
        },
        {
            "name": "broken",
            "provider": "flaky",
            "use_cases": ["extraction"],
            "fallbacks": ["sim-fast"],
        },
        {
            "name": "cut",
            "provider": "sim",
            "use_cases": ["extraction"],
            "sim": {"output_tokens": 10, "cut_stream_after": 3},
        },
    ],
    "routing": {"retries": {"max_attempts": 2, "base_delay_s": 0.0}},
}


@pytest.fixture
def gateway() -> LocalGateway:
    return local_gateway(parse_config(CONFIG), hash_key(KEY))


@pytest.fixture
async def http(gateway: LocalGateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_api(gateway.runtime))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=KEY, base_url=f"{BASE}/v1", http_client=http, max_retries=0)


HELLO = [{"role": "user", "content": "Say hello"}]


async def test_chat_completion_is_openai_shaped(client: openai.AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(model="sim-fast", messages=HELLO)
    completion = raw.parse()
    validate(orjson.loads(raw.content), "CreateChatCompletionResponse")
    assert completion.model == "sim-fast"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content
    assert completion.usage.completion_tokens == 12
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 12
    assert raw.headers["x-llmgw-model"] == "sim-fast"
    assert raw.headers["x-llmgw-provider"] == "sim"
    assert float(raw.headers["x-llmgw-overhead-ms"]) >= 0
    assert raw.headers["x-request-id"].startswith("req_")
    assert "," not in raw.headers["x-request-id"]


async def test_alias_and_client_request_id(client: openai.AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="fast", messages=HELLO, extra_headers={"x-request-id": "abc-123"}
    )
    assert raw.headers["x-request-id"] == "abc-123"
    assert raw.parse().model == "sim-fast"


async def test_same_prompt_same_answer(client: openai.AsyncOpenAI) -> None:
    first = await client.chat.completions.create(model="sim-fast", messages=HELLO)
    second = await client.chat.completions.create(model="sim-fast", messages=HELLO)
    assert first.choices[0].message.content == second.choices[0].message.content


async def test_streaming_with_usage(client: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    stream = await client.chat.completions.create(
        model="sim-fast", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["stop"]
    assert len({c.id for c in chunks}) == 1

    # The raw SSE: every data line is a valid chunk, and the stream ends with [DONE].
    body = {"model": "sim-fast", "messages": HELLO, "stream": True}
    response = await http.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"}
    )
    frames = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    for frame in frames[:-1]:
        validate(orjson.loads(frame), "CreateChatCompletionStreamResponse")
    # Without include_usage no usage chunk is sent.
    assert all(orjson.loads(f).get("usage") is None for f in frames[:-1])


async def test_stream_equals_non_stream(client: openai.AsyncOpenAI) -> None:
    whole = await client.chat.completions.create(model="sim-smart", messages=HELLO)
    stream = await client.chat.completions.create(model="sim-smart", messages=HELLO, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == whole.choices[0].message.content


async def test_models_list_and_get(client: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    models = await client.models.list()
    assert {m.id for m in models.data} == {"sim-fast", "sim-smart", "broken", "cut"}
    raw = await http.get("/v1/models", headers={"authorization": f"Bearer {KEY}"})
    validate(raw.json(), "ListModelsResponse")
    model = await client.models.retrieve("fast")
    assert model.id == "sim-fast" and model.owned_by == "sim"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("nope")


def _error(exc: openai.APIStatusError) -> dict:
    body = exc.response.json()
    validate(body, "ErrorResponse")
    return body["error"]


async def test_unknown_model_is_404(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="gpt-9", messages=HELLO)
    error = _error(info.value)
    assert error["code"] == "model_not_found" and error["param"] == "model"


async def test_missing_and_wrong_key_are_401(http: httpx.AsyncClient) -> None:
    body = {"model": "sim-fast", "messages": HELLO}
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 401
    validate(response.json(), "ErrorResponse")
    wrong = openai.AsyncOpenAI(
        api_key="sk-wrong-key-123456789", base_url=f"{BASE}/v1", http_client=http
    )
    with pytest.raises(openai.AuthenticationError) as info:
        await wrong.chat.completions.create(model="sim-fast", messages=HELLO)
    assert info.value.response.json()["error"]["code"] == "invalid_api_key"
    assert "sk-wrong" in info.value.message and "123456789" not in info.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"model": "sim-fast"}', "messages"),
        (b'{"model": "sim-fast", "messages": []}', "messages"),
        (b'{"model": "sim-fast", "messages": [{"role": "wizard", "content": "x"}]}', "messages[0]"),
        (
            b'{"model": "sim-fast", "messages": [{"role": "user", "content": "x"}], '
            b'"temperature": 9}',
            "temperature",
        ),
        (
            b'{"model": "sim-fast", "messages": [{"role": "user", "content": "x"}], "bogus": 1}',
            "bogus",
        ),
    ],
)
async def test_malformed_bodies_are_400(
    http: httpx.AsyncClient, body: bytes, param: str | None
) -> None:
    response = await http.post(
        "/v1/chat/completions",
        content=body,
        headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    validate(response.json(), "ErrorResponse")
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] is not None and error["param"].startswith(param)
    assert "Traceback" not in response.text


async def test_oversized_body_is_413(http: httpx.AsyncClient) -> None:
    huge = "x" * (5 * 1024 * 1024)
    body = {"model": "sim-fast", "messages": [{"role": "user", "content": huge}]}
    response = await http.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"}
    )
    assert response.status_code == 413
    validate(response.json(), "ErrorResponse")


async def test_unknown_route_is_openai_shaped_404(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/nothing", headers={"authorization": f"Bearer {KEY}"})
    assert response.status_code == 404
    validate(response.json(), "ErrorResponse")


async def test_health_needs_no_key(http: httpx.AsyncClient) -> None:
    assert (await http.get("/health")).json() == {"status": "ok"}
    ready = await http.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["models"] == 4


async def test_failure_is_retried_then_falls_back(
    client: openai.AsyncOpenAI, gateway: LocalGateway
) -> None:
    raw = await client.chat.completions.with_raw_response.create(model="broken", messages=HELLO)
    assert raw.headers["x-llmgw-model"] == "sim-fast"
    audit = gateway.recorder.audits[-1]
    attempts = audit.detail["attempts"]
    assert [a["model"] for a in attempts] == ["broken", "broken", "sim-fast"]
    assert attempts[0]["error"] == "service_unavailable" and attempts[-1]["error"] is None
    usage = gateway.recorder.usages[-1]
    assert usage.model == "sim-fast" and usage.cost_usd > 0


async def test_stream_falls_back_before_first_token(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.with_raw_response.create(
        model="broken", messages=HELLO, stream=True
    )
    assert stream.headers["x-llmgw-model"] == "sim-fast"
    chunks = [c async for c in stream.parse()]
    assert any(c.choices and c.choices[0].delta.content for c in chunks)


async def test_stream_cut_midway_reaches_client_as_error(
    client: openai.AsyncOpenAI, gateway: LocalGateway
) -> None:
    stream = await client.chat.completions.create(model="cut", messages=HELLO, stream=True)
    received = []
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            received.append(chunk)
    assert received, "content before the cut reached the client"
    assert gateway.recorder.usages[-1].status == 502


async def test_use_case_routes_auto(client: openai.AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="auto", messages=HELLO, extra_body={"use_case": "research"}
    )
    assert raw.headers["x-llmgw-model"] == "sim-smart"
    raw = await client.chat.completions.with_raw_response.create(
        model="auto", messages=HELLO, extra_headers={"x-llmgw-use-case": "classification"}
    )
    assert raw.headers["x-llmgw-model"] == "sim-fast"
    raw = await client.chat.completions.with_raw_response.create(
        model="auto", messages=HELLO, extra_body={"route": {"strategy": "cost"}}
    )
    assert raw.headers["x-llmgw-model"] == "sim-fast"
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="auto", messages=HELLO, extra_headers={"x-llmgw-strategy": "fastest"}
        )
    assert _error(info.value)["param"] == "x-llmgw-strategy"


async def test_capability_mismatch_is_400(client: openai.AsyncOpenAI) -> None:
    image = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
        }
    ]
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="sim-fast", messages=image)
    ok = await client.chat.completions.create(model="sim-smart", messages=image)
    assert ok.choices[0].message.content


async def test_tool_call_round_trip(client: openai.AsyncOpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    first = await client.chat.completions.create(model="sim-fast", messages=HELLO, tools=tools)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    messages = [
        *HELLO,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = await client.chat.completions.create(model="sim-fast", messages=messages, tools=tools)
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content


async def test_admin_changes_take_effect(
    http: httpx.AsyncClient, client: openai.AsyncOpenAI
) -> None:
    auth = {"authorization": f"Bearer {KEY}"}
    new = {
        "name": "sim-new",
        "provider": "sim",
        "use_cases": ["chat"],
        "price": {"input_per_mtok": 0.01},
    }
    created = await http.post("/admin/models", json=new, headers=auth)
    assert created.status_code == 201, created.text
    completion = await client.chat.completions.create(model="sim-new", messages=HELLO)
    assert completion.model == "sim-new"
    deprecated = await http.post("/admin/models/sim-new/deprecate", headers=auth)
    assert deprecated.status_code == 200
    explain = await http.post(
        "/admin/route/explain", json={"model": "auto", "messages": HELLO}, headers=auth
    )
    assert "sim-new" not in [c["model"] for c in explain.json()["candidates"]]
    bad = await http.patch("/admin/models/sim-fast", json={"context_window": -5}, headers=auth)
    assert bad.status_code == 400 and "context_window" in bad.json()["error"]["message"]
    dup = await http.post("/admin/models", json=new, headers=auth)
    assert dup.status_code == 409


async def test_admin_needs_admin_scope(http: httpx.AsyncClient) -> None:
    response = await http.get("/admin/models")
    assert response.status_code == 401


async def test_a_bug_outside_the_pipeline_is_an_openai_shaped_500_naming_the_request(
    gateway: LocalGateway, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Model calls are served ahead of FastAPI's own error middleware (GatewayAPI): what
    escapes their handler still answers in OpenAI's error shape, with no stack trace."""

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(gateway.runtime.pipeline, "run", broken)
    answer = await http.post(
        "/v1/chat/completions",
        json={"model": "sim-fast", "messages": HELLO},
        headers={"authorization": f"Bearer {KEY}", "x-request-id": "req-bug-1"},
    )
    assert answer.status_code == 500
    validate(answer.json(), "ErrorResponse")
    assert "req-bug-1" in answer.json()["error"]["message"]
    assert "secret" not in answer.text
    assert answer.headers["x-request-id"] == "req-bug-1"


async def test_a_model_call_under_a_mount_point_is_served(gateway: LocalGateway) -> None:
    """Behind a route prefix (Serve's `route_prefix`, a mount), the fast path routes on the
    path below it, as Starlette does."""
    transport = httpx.ASGITransport(app=create_api(gateway.runtime), root_path="/llm")
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as prefixed:
        answer = await prefixed.post(
            "/llm/v1/chat/completions",
            json={"model": "sim-fast", "messages": HELLO},
            headers={"authorization": f"Bearer {KEY}"},
        )
    assert answer.status_code == 200, answer.text
