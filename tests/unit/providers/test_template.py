"""The adapter template: the base class checks declared support before any hook runs, one rule
decides whether a stream completed, and both Stainless SDKs map errors by status through one
table. First with a scripted adapter (the base class alone), then each real SDK against its
protocol server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest

from gateway.config import ModelConfig, ProviderConfig
from gateway.errors import (
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gateway.providers.base import Provider
from gateway.providers.deadline import Budget
from gateway.providers.streams import ChunkStream, StreamState
from gateway.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    Delta,
    EmbeddingRequest,
    ResponseMessage,
    Usage,
)
from tests.protocol_servers import Failure, Reply
from tests.unit.providers.conftest import Upstream, _fresh

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


class Scripted(Provider):
    """An adapter whose upstream is a list of events; it records which hooks ran."""

    type = "scripted"
    supports: ClassVar[frozenset[str]] = frozenset({"chat", "streaming", "tools", "json_mode"})

    def __init__(self, events: list[str]) -> None:
        super().__init__(ProviderConfig(name="scripted", type="sim"))
        self.events = events
        self.ran: list[str] = []
        self.closed = False

    async def _convert_completion_params(
        self, request: ChatCompletionRequest, model: ModelConfig, *, stream: bool
    ) -> dict[str, Any]:
        self.ran.append("params")
        return {}

    async def _create_completion(self, params: Any, model: ModelConfig) -> str:
        self.ran.append("call")
        return "".join(self.events)

    def _convert_completion_response(
        self, response: str, request: ChatCompletionRequest, model: ModelConfig
    ) -> ChatCompletion:
        message = ResponseMessage(content=response)
        return ChatCompletion(model=model.name, choices=[Choice(message=message)])

    async def _create_stream(self, params: Any, model: ModelConfig) -> AsyncIterator[str]:
        self.ran.append("open")
        return self._events()

    async def _events(self) -> AsyncIterator[str]:
        try:
            for event in self.events:
                yield event
        finally:
            self.closed = True

    def _convert_completion_chunk_response(
        self, event: str, chunks: ChunkStream, state: StreamState
    ) -> list[ChatCompletionChunk]:
        if event == "<end>":
            state.finished = True
            state.usage = Usage.of(3, 2)
            return [chunks.chunk(Delta(), finish_reason="stop")]
        return [chunks.chunk(Delta(content=event))]


def model(*capabilities: str) -> ModelConfig:
    return ModelConfig(name="m", provider="scripted", capabilities=list(capabilities or ["chat"]))


def request(**params: Any) -> ChatCompletionRequest:
    content = params.pop("content", "Hi")
    messages = [{"role": "user", "content": content}]
    return ChatCompletionRequest(model="m", messages=messages, **params)


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"tools": [TOOL]}, "tools"),
        ({"content": [{"type": "text", "text": "Hi"}, IMAGE]}, "messages"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
    ],
    ids=["tools", "vision", "json_mode"],
)
async def test_a_capability_the_model_does_not_declare_is_refused_before_any_hook(
    params: dict[str, Any], param: str
) -> None:
    adapter = Scripted(["Hello", "<end>"])
    with pytest.raises(InvalidRequestError) as caught:
        await adapter.complete(request(**params), model("chat", "streaming"))
    assert caught.value.param == param
    with pytest.raises(InvalidRequestError):
        await anext(adapter.stream(request(stream=True, **params), model("chat", "streaming")))
    assert adapter.ran == []


async def test_a_capability_the_provider_type_does_not_declare_is_refused_whatever_the_model() -> (
    None
):
    adapter = Scripted([])
    vision = model("chat", "streaming", "vision", "embeddings")
    content = [{"type": "text", "text": "Hi"}, IMAGE]
    with pytest.raises(InvalidRequestError, match="does not accept images"):
        await adapter.complete(request(content=content), vision)
    with pytest.raises(InvalidRequestError, match="does not create embeddings") as caught:
        await adapter.embed(EmbeddingRequest(model="m", input="hi"), vision)
    assert caught.value.param == "model"
    assert adapter.ran == []


async def test_a_refused_parameter_is_a_400_naming_it_before_any_hook() -> None:
    adapter = Scripted([])
    adapter.refuses = frozenset({"seed"})
    with pytest.raises(InvalidRequestError) as caught:
        await adapter.complete(request(seed=7), model())
    assert caught.value.param == "seed" and adapter.ran == []


async def test_a_complete_stream_ends_with_its_usage_chunk() -> None:
    adapter = Scripted(["Hel", "lo", "<end>"])
    chunks = [c async for c in adapter.stream(request(stream=True), model())]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
    assert chunks[-1].choices == [] and chunks[-1].usage == Usage.of(3, 2)
    assert len({c.id for c in chunks}) == 1 and adapter.closed


async def test_a_stream_that_ends_without_its_completion_signal_is_cut_not_short() -> None:
    adapter = Scripted(["Hel", "lo"])
    seen: list[ChatCompletionChunk] = []
    with pytest.raises(UpstreamError) as caught:
        async for chunk in adapter.stream(request(stream=True), model()):
            seen.append(chunk)
    assert caught.value.code == "upstream_stream_cut"
    assert all(c.usage is None for c in seen) and adapter.closed


async def test_a_consumer_that_stops_early_closes_the_upstream_stream() -> None:
    adapter = Scripted(["a", "b", "c", "<end>"])
    stream = adapter.stream(request(stream=True), model())
    await anext(stream)
    await stream.aclose()
    assert adapter.closed


async def test_an_error_the_adapter_does_not_map_is_not_swallowed() -> None:
    class Broken(Scripted):
        async def _create_completion(self, params: Any, model: ModelConfig) -> str:
            raise KeyError("unmapped")

    with pytest.raises(KeyError):
        await Broken([]).complete(request(), model())


# ------------------------------------------------------------------------------ real SDKs


async def test_each_adapter_refuses_an_undeclared_capability_before_calling(
    upstream: Upstream,
) -> None:
    plain = upstream.with_model(capabilities=["chat", "streaming"])
    with pytest.raises(InvalidRequestError) as caught:
        await upstream.provider.complete(upstream.request("Hi", tools=[TOOL]), plain)
    assert caught.value.param == "tools"
    with pytest.raises(InvalidRequestError):
        await upstream.collect(upstream.request("Hi", tools=[TOOL], stream=True), plain)
    assert upstream.server.received == []


async def test_each_adapter_treats_a_stream_ended_before_its_completion_signal_as_cut(
    upstream: Upstream,
) -> None:
    upstream.server.script(Reply(text="A long answer in many small pieces.", end_after=3))
    with pytest.raises(UpstreamError) as caught:
        await upstream.collect(upstream.request("Hi", stream=True))
    assert caught.value.code == "upstream_stream_cut"
    assert caught.value.status_code == 502


# One table (gateway.errors) for every status either Stainless SDK reports.
STATUSES: dict[int, tuple[type[GatewayError], int]] = {
    400: (InvalidRequestError, 400),
    401: (UpstreamError, 502),
    403: (UpstreamError, 502),
    404: (ModelNotFoundError, 404),
    408: (UpstreamTimeoutError, 504),
    409: (UpstreamError, 502),
    413: (PayloadTooLargeError, 413),
    422: (InvalidRequestError, 400),
    429: (RateLimitError, 429),
    500: (UpstreamError, 502),
    502: (UpstreamError, 502),
    503: (ServiceUnavailableError, 503),
    504: (UpstreamTimeoutError, 504),
    529: (ServiceUnavailableError, 503),
}


@pytest.fixture(params=["openai", "azure_openai", "anthropic"])
def stainless(
    request: pytest.FixtureRequest, servers: dict[str, Any], upstreams: dict[str, Upstream]
) -> Upstream:
    return _fresh(request.param, servers, upstreams)


@pytest.mark.parametrize("status", list(STATUSES))
async def test_both_stainless_sdks_map_each_status_through_one_table(
    stainless: Upstream, status: int
) -> None:
    kind = "rate_limit" if status == 429 else "server"
    stainless.server.script(Reply(failure=Failure(kind, status=status, retry_after=3)))
    with pytest.raises(GatewayError) as caught:
        await stainless.provider.complete(stainless.request("Hi"), stainless.model)
    cls, client_status = STATUSES[status]
    error = caught.value
    assert type(error) is cls and error.status_code == client_status
    assert error.message.startswith(f"upstream provider '{stainless.provider.name}' answered")
    if status in (401, 403):
        assert error.code == "upstream_auth_failed"
    if status == 429:
        assert error.retry_after == 3
    assert len(stainless.server.received) == 1  # never retried by the SDK


@pytest.mark.parametrize("status", [400, 429, 503])
async def test_a_status_at_a_streams_opening_maps_as_for_a_completion(
    stainless: Upstream, status: int
) -> None:
    stainless.server.script(Reply(failure=Failure("server", status=status)))
    with pytest.raises(GatewayError) as caught:
        await stainless.collect(stainless.request("Hi", stream=True))
    cls, client_status = STATUSES[status]
    assert type(caught.value) is cls and caught.value.status_code == client_status


async def test_an_adapter_keeps_to_the_budget_the_invoker_gave_it_not_its_models() -> None:
    class Slow(Scripted):
        async def _create_completion(self, params: Any, model: ModelConfig) -> str:
            await asyncio.sleep(30)
            return ""

    budget = Budget(total_s=0.2, first_token_s=0.2, connect_s=0.1)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeoutError):
        await Slow(["x"]).complete(request(), model(), budget)  # the model's own: 600 s
    assert time.monotonic() - started < 5
