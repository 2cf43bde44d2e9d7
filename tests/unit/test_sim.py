"""The sim provider: deterministic, paced, and failing when told to."""

from __future__ import annotations

import time

import pytest

from gateway.config import ModelConfig, ProviderConfig, SimSettings
from gateway.errors import RateLimitError, ServiceUnavailableError, UpstreamError
from gateway.providers.sim import SimProvider
from gateway.wire import ChatCompletionRequest


def request(text: str = "hello", **extra: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": text}], **extra}
    )


def sim(**settings: object) -> tuple[SimProvider, ModelConfig]:
    provider = SimProvider(ProviderConfig(name="sim", type="sim", sim=SimSettings(**settings)))
    return provider, ModelConfig(name="m", provider="sim", max_output_tokens=100)


async def test_same_seed_and_prompt_same_text() -> None:
    provider, model = sim(seed=1, output_tokens=10)
    first = await provider.complete(request(), model)
    again = await provider.complete(request(), model)
    other = await provider.complete(request("something else"), model)
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.choices[0].message.content != other.choices[0].message.content
    assert first.usage.completion_tokens == 10


async def test_max_tokens_truncates_with_length() -> None:
    provider, model = sim(output_tokens=10)
    result = await provider.complete(request(max_tokens=3), model)
    assert result.choices[0].finish_reason == "length" and result.usage.completion_tokens == 3


async def test_stop_sequence_ends_the_text() -> None:
    provider, model = sim(seed=2, output_tokens=30)
    full = (await provider.complete(request(), model)).choices[0].message.content
    stop = full.split()[4]
    cut = await provider.complete(request(stop=[stop]), model)
    assert stop not in cut.choices[0].message.content
    assert cut.choices[0].finish_reason == "stop"


async def test_pacing_sets_ttft_and_token_rate() -> None:
    provider, model = sim(ttft_ms=100, tokens_per_s=50, output_tokens=5)
    start = time.monotonic()
    stamps = []
    async for _ in provider.stream(request(), model):
        stamps.append(time.monotonic() - start)
    assert stamps[0] >= 0.1
    assert stamps[-1] >= 0.1 + 5 / 50 - 0.01


@pytest.mark.parametrize(
    ("status", "error"),
    [(503, ServiceUnavailableError), (429, RateLimitError), (500, UpstreamError)],
)
async def test_injected_failures(status: int, error: type) -> None:
    provider, model = sim(failure_rate=1.0, failure_statuses=[status])
    with pytest.raises(error) as info:
        await provider.complete(request(), model)
    assert info.value.status_code == (502 if status == 500 else status)


async def test_stream_cut_midway() -> None:
    provider, model = sim(output_tokens=10, cut_stream_after=3)
    received = []
    with pytest.raises(UpstreamError):
        async for chunk in provider.stream(request(), model):
            received.append(chunk)
    content = [c for c in received if c.choices and c.choices[0].delta.content]
    assert len(content) == 3


async def test_json_schema_output_matches_schema() -> None:
    import json

    provider, model = sim()
    schema = {
        "type": "object",
        "properties": {"label": {"enum": ["spam", "ham"]}, "score": {"type": "number"}},
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}
    result = await provider.complete(request(response_format=fmt), model)
    value = json.loads(result.choices[0].message.content)
    assert value["label"] == "spam" and isinstance(value["score"], float)
