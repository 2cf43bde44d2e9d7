"""Hypothesis over request bodies: whatever a client sends, never a 500, and every error in
OpenAI's shape."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.wire import ChatCompletionRequest, EmbeddingRequest
from tests.fuzz.conftest import AUTH, MODELS
from tests.openapi import validate

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
texts = st.text(max_size=30)
content_parts = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", "audio", 1])},
    optional={
        "text": texts | json_values,
        "image_url": st.fixed_dictionaries({"url": texts}) | json_values,
    },
)
messages = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "bogus"])},
    optional={
        "content": texts | st.lists(content_parts, max_size=3) | json_values,
        "name": texts,
        "tool_call_id": texts,
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {
                    "id": texts,
                    "type": st.just("function"),
                    "function": st.fixed_dictionaries({"name": texts, "arguments": texts}),
                }
            ),
            max_size=2,
        )
        | json_values,
    },
)
tools = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["function", "other"]),
            "function": st.fixed_dictionaries(
                {"name": texts}, optional={"parameters": json_values, "description": texts}
            ),
        }
    ),
    max_size=3,
)


def field_values(name: str) -> st.SearchStrategy[Any]:
    special = {
        "model": st.sampled_from(MODELS) | texts,
        "messages": st.lists(messages, max_size=3) | json_values,
        "tools": tools | json_values,
        "stream": st.booleans() | json_values,
        "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans()})
        | json_values,
        "response_format": st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "json_object", "json_schema"])},
            optional={
                "json_schema": st.fixed_dictionaries(
                    {"name": texts}, optional={"schema": json_values}
                )
            },
        )
        | json_values,
        "input": texts
        | st.lists(texts, max_size=3)
        | st.lists(st.integers(-5, 100_000), max_size=3)
        | json_values,
        "max_tokens": st.integers(-10, 2**40) | json_values,
        "use_case": st.sampled_from(["chat", "research", "classification", "nope"]) | json_values,
        "route": st.fixed_dictionaries(
            {},
            optional={
                "strategy": st.sampled_from(["cost", "latency", "hybrid", "x"]),
                "max_cost_per_mtok": st.floats(allow_nan=False, allow_infinity=False),
                "max_latency_ms": st.floats(allow_nan=False, allow_infinity=False),
                "providers": st.lists(texts, max_size=2),
                "fallback": st.booleans(),
            },
        )
        | json_values,
    }
    return special.get(name, json_values)


def bodies(model: type[Any], base: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A valid request with some fields replaced or added, or arbitrary JSON at all."""
    names = [*sorted(model.model_fields), "bogus"]
    edits = st.lists(st.sampled_from(names), max_size=4, unique=True).flatmap(
        lambda keys: st.fixed_dictionaries({k: field_values(k) for k in keys})
    )
    return edits.map(lambda e: {**base, **e}) | json_values


CHAT_BASE = {"model": "sim-fast", "messages": [{"role": "user", "content": "hello"}]}
EMBED_BASE = {"model": "sim-embed", "input": "hello"}


def encode(body: Any) -> bytes:
    # The standard library's encoder: it writes integers of any size, as a client might.
    return json.dumps(body).encode()


def check(response: Any) -> None:
    assert response.status_code != 500, response.text
    assert response.status_code < 500 or response.status_code in (502, 503, 504), response.text
    if response.status_code >= 400:
        validate(response.json(), "ErrorResponse")
    elif response.headers["content-type"].startswith("application/json"):
        body = response.json()
        kind = "CreateChatCompletionResponse" if body.get("object") == "chat.completion" else None
        if kind:
            validate(body, kind)


@FUZZ
@given(body=bodies(ChatCompletionRequest, CHAT_BASE))
def test_chat_bodies_never_crash(client: TestClient, body: Any) -> None:
    check(client.post("/v1/chat/completions", content=encode(body), headers=AUTH))


@FUZZ
@given(body=bodies(EmbeddingRequest, EMBED_BASE))
def test_embedding_bodies_never_crash(client: TestClient, body: Any) -> None:
    check(client.post("/v1/embeddings", content=encode(body), headers=AUTH))


@settings(FUZZ, max_examples=60)
@given(
    raw=st.binary(max_size=200),
    path=st.sampled_from(
        ["/v1/chat/completions", "/v1/embeddings", "/admin/route/explain", "/admin/models"]
    ),
)
def test_raw_bytes_never_crash(client: TestClient, raw: bytes, path: str) -> None:
    check(client.post(path, content=raw, headers=AUTH))


@settings(FUZZ, max_examples=60)
@given(body=bodies(ChatCompletionRequest, CHAT_BASE))
def test_route_explain_never_crashes(client: TestClient, body: Any) -> None:
    check(client.post("/admin/route/explain", content=encode(body), headers=AUTH))
