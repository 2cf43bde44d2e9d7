"""The client's `response_format` schema: checked on arrival, nothing fetched, time-bounded, a
400 naming the field for every fault in it, and a miss that no other client pays for."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gateway.config import RetryConfig
from gateway.errors import InvalidRequestError, OutputSchemaError
from gateway.pipeline.invoker import counts_against_circuit, falls_back
from gateway.providers.schemas import FIELD
from gateway.routing import RetryPolicy
from tests.protocol_servers import Reply
from tests.unit.providers.conftest import Upstream


def json_schema(schema: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}


async def refused(upstream: Upstream, schema: Any) -> InvalidRequestError:
    request = upstream.request("Hi", response_format=json_schema(schema))
    with pytest.raises(InvalidRequestError) as caught:
        await upstream.provider.complete(request, upstream.model)
    assert caught.value.status_code == 400 and caught.value.param == "response_format"
    assert caught.value.message.startswith(FIELD)
    assert upstream.server.received == [], "refused before any upstream call"
    return caught.value


async def test_a_remote_ref_is_refused_and_never_fetched(upstream: Upstream) -> None:
    upstream.server.files["schema.json"] = ("application/json", b'{"type": "string"}')
    remote = f"{upstream.server.url}/files/schema.json"
    error = await refused(upstream, {"type": "object", "properties": {"a": {"$ref": remote}}})
    assert f"{FIELD}.properties.a.$ref" in error.message


async def test_an_unresolvable_ref_is_a_400(openai_upstream: Upstream) -> None:
    error = await refused(openai_upstream, {"$ref": "#/$defs/missing"})
    assert "#/$defs/missing" in error.message


async def test_a_local_ref_works(openai_upstream: Upstream) -> None:
    schema = {"$defs": {"n": {"type": "integer"}}, "properties": {"n": {"$ref": "#/$defs/n"}}}
    openai_upstream.server.script(Reply(text='{"n": "x"}'))
    request = openai_upstream.request("Hi", response_format=json_schema(schema))
    with pytest.raises(OutputSchemaError):
        await openai_upstream.provider.complete(request, openai_upstream.model)


async def test_an_invalid_schema_names_the_field(openai_upstream: Upstream) -> None:
    error = await refused(openai_upstream, {"type": "object", "properties": {"a": {"type": 12}}})
    assert f"{FIELD}.properties.a.type" in error.message


async def test_an_invalid_pattern_names_the_field(openai_upstream: Upstream) -> None:
    error = await refused(openai_upstream, {"properties": {"a": {"pattern": "(unclosed"}}})
    assert f"{FIELD}.properties.a.pattern" in error.message


async def test_a_huge_or_deep_schema_is_a_400(openai_upstream: Upstream) -> None:
    big = {"properties": {f"p{i}": {"type": "string"} for i in range(5000)}}
    assert "KiB" in (await refused(openai_upstream, big)).message
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        deep = {"items": deep}
    assert "nested deeper" in (await refused(openai_upstream, deep)).message


@pytest.mark.timeout(20)
async def test_a_catastrophic_pattern_is_bounded_in_time(upstream: Upstream) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^(a|a)+$"}}}
    upstream.server.script(Reply(text='{"a": "' + "a" * 32 + '!"}'))
    request = upstream.request("Hi", response_format=json_schema(schema))
    start = time.monotonic()
    with pytest.raises(InvalidRequestError) as caught:
        await upstream.provider.complete(request, upstream.model)
    assert time.monotonic() - start < 5
    assert caught.value.param == "response_format" and "took over" in caught.value.message


async def test_a_pattern_still_checks(openai_upstream: Upstream) -> None:
    schema = {
        "properties": {"a": {"pattern": "^x+$"}},
        "patternProperties": {"^b": {"type": "string"}},
    }
    openai_upstream.server.script(Reply(text='{"a": "xx", "bad": 1}'))
    request = openai_upstream.request("Hi", response_format=json_schema(schema))
    with pytest.raises(OutputSchemaError) as caught:
        await openai_upstream.provider.complete(request, openai_upstream.model)
    assert "bad" in caught.value.message


async def test_a_schema_miss_neither_opens_the_circuit_nor_moves_on(
    openai_upstream: Upstream,
) -> None:
    openai_upstream.server.script(Reply(text='{"n": "x"}'))
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    request = openai_upstream.request("Hi", response_format=json_schema(schema))
    with pytest.raises(OutputSchemaError) as caught:
        await openai_upstream.provider.complete(request, openai_upstream.model)
    error = caught.value
    assert error.status_code == 502 and error.code == "invalid_json_output"
    assert not counts_against_circuit(error) and not falls_back(error)
    assert not RetryPolicy(RetryConfig()).should_retry(error, 1)
    assert error.body()["error"]["type"] == "upstream_error"


@pytest.mark.parametrize(
    "schema",
    [
        {"type": ["string", "null"]},
        {"not": {"type": "string"}},
        {"type": "object", "properties": {"a": True}},
        {"type": "array", "items": [{"type": "string"}]},
    ],
)
async def test_a_schema_anthropic_cannot_express_is_a_400(
    anthropic_upstream: Upstream, schema: dict[str, Any]
) -> None:
    request = anthropic_upstream.request("Hi", response_format=json_schema(schema))
    with pytest.raises(InvalidRequestError) as caught:
        await anthropic_upstream.provider.complete(request, anthropic_upstream.model)
    assert caught.value.status_code == 400 and caught.value.param == "response_format"
    assert anthropic_upstream.server.received == []
