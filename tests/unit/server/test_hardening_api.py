"""The HTTP edge under hostile input: no body read before authentication, none read past the
limit, bounded caches, bounded numbers, and a 400 (never a 500) for anything a client sends."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from gateway.auth import hash_key
from gateway.config import ConfigError, parse_config
from gateway.errors import PayloadTooLargeError
from gateway.server.api import create_api
from gateway.server.body import read_body
from gateway.server.local import LocalGateway, local_gateway
from tests.openapi import validate

KEY = "sk-llmgw-test-admin-key-0123456789"
BASE = "http://gateway.test"
LIMIT = 64 * 1024

CONFIG: dict[str, Any] = {
    "providers": [{"name": "sim", "type": "sim", "sim": {"seed": 3, "output_tokens": 8}}],
    "models": [
        {
            "name": "sim-fast",
            "provider": "sim",
            "capabilities": ["chat", "streaming", "tools"],
            "context_window": 4096,
            "max_output_tokens": 1024,
        },
        {
            "name": "sim-big",
            "provider": "sim",
            "capabilities": ["chat", "streaming", "tools"],
            "context_window": 200_000,
            "max_output_tokens": 8192,
        },
    ],
    # Only the steps this module is about (metering and quotas have their own tests).
    "pipeline": {"steps": ["authenticate", "validate", "enrich", "route", "invoke"]},
    "server": {"max_body_bytes": LIMIT},
}
AUTH = {"authorization": f"Bearer {KEY}"}
HELLO = [{"role": "user", "content": "Say hello"}]


def gateway_for(**changes: Any) -> LocalGateway:
    config = copy.deepcopy(CONFIG)
    for section, values in changes.items():
        config.setdefault(section, {}).update(values)
    return local_gateway(parse_config(config), hash_key(KEY))


@pytest.fixture
def gateway() -> LocalGateway:
    return gateway_for()


@pytest.fixture
async def http(gateway: LocalGateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_api(gateway.runtime))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


async def call_asgi(
    app: Any, method: str, path: str, headers: dict[str, str], chunks: list[bytes]
) -> tuple[int, bytes, int]:
    """Drive the ASGI app directly: (status, body, how many body chunks it pulled)."""
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled >= len(chunks):
            await asyncio.sleep(3600)  # a client that never finishes its body
        pulled += 1
        return {"type": "http.request", "body": chunks[pulled - 1], "more_body": True}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1234),
        "server": ("gateway.test", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), 5)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, pulled


# ---------------------------------------------------------------- 1. memory without a key

MEGABYTE = [b"x" * 1024] * 1024  # 1 MiB in 1 KiB chunks, never ending


@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/v1/embeddings", "/admin/route/explain", "/admin/models"]
)
async def test_no_body_is_read_before_the_caller_is_authenticated(
    gateway: LocalGateway, path: str
) -> None:
    app = create_api(gateway.runtime)
    status, body, pulled = await call_asgi(app, "POST", path, {}, MEGABYTE)
    assert status == 401
    validate(httpx.Response(200, content=body).json(), "ErrorResponse")
    assert pulled == 0


async def test_a_chunked_body_stops_being_read_at_the_limit(gateway: LocalGateway) -> None:
    app = create_api(gateway.runtime)
    for path in ("/v1/chat/completions", "/admin/route/explain"):
        status, body, pulled = await call_asgi(app, "POST", path, AUTH, MEGABYTE)
        assert status == 413, body
        assert pulled == LIMIT // 1024 + 1  # one chunk past the limit, not one more
        validate(httpx.Response(200, content=body).json(), "ErrorResponse")


async def test_a_declared_length_over_the_limit_is_refused_unread(gateway: LocalGateway) -> None:
    app = create_api(gateway.runtime)
    headers = {**AUTH, "content-length": str(10 * LIMIT)}
    status, _, pulled = await call_asgi(app, "POST", "/v1/chat/completions", headers, MEGABYTE)
    assert (status, pulled) == (413, 0)


async def test_read_body_counts_while_reading() -> None:
    from starlette.requests import Request

    chunks = iter([b"a" * 600, b"b" * 600, b"c" * 600])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": next(chunks), "more_body": True}

    request = Request({"type": "http", "headers": []}, receive)
    with pytest.raises(PayloadTooLargeError):
        await read_body(request, 1024)
    assert next(chunks) == b"c" * 600  # the third chunk was never pulled


# ---------------------------------------------------------------- 2. bounded plan cache


async def test_random_model_paths_do_not_grow_the_plan_cache(
    gateway: LocalGateway, http: httpx.AsyncClient
) -> None:
    for i in range(50):
        await http.get(f"/v1/models/random-{i}")
        await http.get(f"/v1/models/random-{i}", headers=AUTH)
    assert len(gateway.runtime.pipeline._plans) <= 2


# ---------------------------------------------------------------- 3 and 4. input errors are 400s


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "sim-fast", "messages": HELLO, **fields}


def nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def tool(parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "f", "parameters": parameters}}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat(max_tokens=2**62), "max_tokens"),
        (chat(max_completion_tokens=2**40), "max_completion_tokens"),
        (chat(tools=[tool({})] * 129), "tools"),
        (chat(stop=["a", "b", "c", "d", "e"]), "stop"),
        (chat(logit_bias={str(i): 1 for i in range(301)}), "logit_bias"),
        (chat(logit_bias={"1": 1000}), "logit_bias"),
        (chat(metadata={f"k{i}": "v" for i in range(17)}), "metadata"),
        (chat(metadata={"k" * 65: "v"}), "metadata"),
        (chat(metadata={"k": "v" * 513}), "metadata"),
        (chat(n=1000), "n"),
        (chat(seed=2**63), "seed"),
        (
            chat(
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": nested(100)},
                }
            ),
            "response_format.json_schema.schema",
        ),
    ],
)
async def test_unbounded_input_is_a_400_naming_the_field(
    http: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    response = await http.post("/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 400, response.text
    validate(response.json(), "ErrorResponse")
    assert response.json()["error"]["param"].startswith(param)


async def test_tool_parameters_nested_1000_deep_are_a_400(http: httpx.AsyncClient) -> None:
    # Written by hand: Python's own JSON encoder cannot nest this deep either.
    deep = '{"type": "object", "properties": {"a": ' * 500 + "{}" + "}}" * 500
    body = (
        '{"model": "sim-fast", "messages": [{"role": "user", "content": "x"}], "tools": '
        '[{"type": "function", "function": {"name": "f", "parameters": ' + deep + "}}]}"
    )
    response = await http.post(
        "/v1/chat/completions",
        content=body,
        headers={**AUTH, "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "tools[0].function.parameters"


async def test_a_deep_but_allowed_tool_schema_is_served(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/chat/completions", json=chat(tools=[tool(nested(20))]), headers=AUTH
    )
    assert response.status_code == 200, response.text


async def test_max_tokens_over_the_named_models_limit_names_the_limit(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post("/v1/chat/completions", json=chat(max_tokens=5000), headers=AUTH)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "max_tokens" and "1024" in error["message"]
    response = await http.post(
        "/v1/chat/completions", json=chat(max_completion_tokens=1024), headers=AUTH
    )
    assert response.status_code == 200


async def test_a_prompt_beyond_the_context_window_is_refused_before_any_call(
    gateway: LocalGateway, http: httpx.AsyncClient
) -> None:
    long = [{"role": "user", "content": "word " * 6000}]
    response = await http.post("/v1/chat/completions", json=chat(messages=long), headers=AUTH)
    assert response.status_code == 400
    validate(response.json(), "ErrorResponse")
    assert response.json()["error"]["code"] == "context_length_exceeded"
    # `auto` goes to the model whose window holds it.
    response = await http.post(
        "/v1/chat/completions", json=chat(model="auto", messages=long), headers=AUTH
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-llmgw-model"] == "sim-big"


# ---------------------------------------------------------------- 8. docs, and skip on /admin


async def test_docs_are_off_unless_configured() -> None:
    for docs, status in ((False, 404), (True, 200)):
        app = create_api(gateway_for(server={"docs": docs}).runtime)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            assert (await client.get("/openapi.json")).status_code == status
            assert (await client.get("/docs")).status_code == status


@pytest.mark.parametrize("path", ["/admin/models", "/admin/route/explain", "admin/status"])
def test_skipping_authentication_on_admin_paths_is_refused(path: str) -> None:
    config = {**CONFIG, "pipeline": {"skip": {path: ["authenticate"]}}}
    with pytest.raises(ConfigError, match=r"pipeline\.skip\..*authenticate"):
        parse_config(config, "gateway.yaml")


def test_validating_before_authenticating_is_refused() -> None:
    config = {**CONFIG, "pipeline": {"steps": ["validate", "authenticate", "route", "invoke"]}}
    with pytest.raises(ConfigError, match=r"(?s)gateway.yaml.*pipeline\.steps"):
        parse_config(config, "gateway.yaml")


# ---------------------------------------------------------------- a bug of ours


async def test_a_bug_outside_the_model_calls_is_a_500_in_openais_shape(
    gateway: LocalGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception no handler expected (here in `/v1/models`) reaches the client as OpenAI's
    error shape with the request id to quote, not Starlette's plain-text page."""

    def broken() -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(gateway.runtime.services, "snapshot", broken)
    transport = httpx.ASGITransport(app=create_api(gateway.runtime), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=f"{BASE}/v1", http_client=http)
        with pytest.raises(openai.InternalServerError) as caught:
            await client.models.list()
    response = caught.value.response
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    validate(body, "ErrorResponse")
    request_id = response.headers["x-request-id"]
    assert body["error"]["message"] == f"internal error (request id {request_id})"
    assert "a bug" not in response.text and "Traceback" not in response.text
