"""What every provider adapter guarantees when the upstream fails: its errors mapped to the
taxonomy, timeouts, cut and malformed answers, an unreachable host, and no retries of its own;
each adapter with its real SDK against its protocol server (the rest: test_contract.py)."""

from __future__ import annotations

import pytest

from gateway.errors import (
    ContentFilterError,
    ContextLengthError,
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from tests.protocol_servers import Failure, Reply
from tests.unit.providers.conftest import Upstream

# failure kind -> (class, status, retry_after kept); None: the provider has no such failure
EXPECTED: dict[str, tuple[type[GatewayError], int]] = {
    "bad_request": (InvalidRequestError, 400),
    "auth": (UpstreamError, 502),
    "permission": (UpstreamError, 502),
    "not_found": (ModelNotFoundError, 404),
    "rate_limit": (RateLimitError, 429),
    "overloaded": (ServiceUnavailableError, 503),
    "server": (UpstreamError, 502),
    "context_length": (ContextLengthError, 400),
    "content_filter": (ContentFilterError, 400),
}
# What a provider has no way to say.
ABSENT = {
    "anthropic": {"content_filter"},  # a refusal is a stop reason, not an error
    "ollama": {"content_filter"},
    "bedrock": {"content_filter"},  # guardrails stop the answer, they do not fail it
}


@pytest.mark.parametrize("kind", list(EXPECTED))
async def test_upstream_failures_map_to_the_taxonomy(upstream: Upstream, kind: str) -> None:
    if kind in ABSENT.get(upstream.kind, set()):
        pytest.skip(f"{upstream.kind} has no {kind} error")
    upstream.server.script(Reply(failure=Failure(kind, "scripted", retry_after=7)))
    cls, status = EXPECTED[kind]
    with pytest.raises(GatewayError) as caught:
        await upstream.provider.complete(upstream.request("Hi"), upstream.model)
    error = caught.value
    assert type(error) is cls, error
    assert error.status_code == status
    assert error.provider == upstream.provider.name
    if kind == "rate_limit":
        assert error.retry_after == 7
    if kind in ("auth", "permission"):
        assert error.code == "upstream_auth_failed"


async def test_a_failure_before_the_stream_starts_is_raised_before_any_chunk(
    upstream: Upstream,
) -> None:
    upstream.server.script(Reply(failure=Failure("rate_limit", retry_after=3)))
    received = []
    with pytest.raises(RateLimitError):
        async for chunk in upstream.provider.stream(upstream.request("Hi"), upstream.model):
            received.append(chunk)
    assert received == []


async def test_an_error_event_inside_the_stream_is_raised(upstream: Upstream) -> None:
    upstream.server.script(
        Reply(text="partial answer", failure=Failure("server"), failure_in_stream=True)
    )
    with pytest.raises(GatewayError) as caught:
        await upstream.collect(upstream.request("Hi"))
    assert caught.value.retryable and caught.value.provider == upstream.provider.name


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_an_upstream_slower_than_the_total_timeout_is_a_504(
    upstream: Upstream, stream: bool
) -> None:
    upstream.server.script(Reply(delay_s=1.0))
    model = upstream.with_model(timeouts={"connect_s": 1, "first_token_s": 5, "total_s": 0.3})
    with pytest.raises(UpstreamTimeoutError) as caught:
        if stream:
            await upstream.collect(upstream.request("Hi"), model)
        else:
            await upstream.provider.complete(upstream.request("Hi"), model)
    assert caught.value.status_code == 504


async def test_a_slow_first_token_is_a_504(upstream: Upstream) -> None:
    upstream.server.script(Reply(delay_s=1.0))
    model = upstream.with_model(timeouts={"connect_s": 1, "first_token_s": 0.3, "total_s": 10})
    with pytest.raises(UpstreamTimeoutError):
        await upstream.collect(upstream.request("Hi"), model)


async def test_a_stream_cut_mid_way_is_an_upstream_error(upstream: Upstream) -> None:
    upstream.server.script(Reply(text="this answer will not finish", chunk_chars=3, cut_after=4))
    received = []
    with pytest.raises(UpstreamError) as caught:
        async for chunk in upstream.provider.stream(upstream.request("Hi"), upstream.model):
            received.append(chunk)
    assert caught.value.code == "upstream_stream_cut"
    assert received and received[0].choices[0].delta.role == "assistant"


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_malformed_body_is_an_upstream_error(upstream: Upstream, stream: bool) -> None:
    upstream.server.script(Reply(malformed=True))
    with pytest.raises(UpstreamError) as caught:
        if stream:
            await upstream.collect(upstream.request("Hi"))
        else:
            await upstream.provider.complete(upstream.request("Hi"), upstream.model)
    assert caught.value.status_code == 502
    assert caught.value.code == "malformed_upstream_response"


async def test_an_unreachable_upstream_is_a_503(upstream: Upstream) -> None:
    from gateway.providers import build_provider

    port = upstream.server.port
    config = upstream.provider.config
    moved = {
        k: (v.replace(f":{port}", ":9") if isinstance(v, str) else v)
        for k, v in config.model_dump().items()
    }
    provider = build_provider(type(config).model_validate(moved))
    model = upstream.with_model(timeouts={"connect_s": 1, "first_token_s": 5, "total_s": 5})
    try:
        with pytest.raises(ServiceUnavailableError):
            await provider.complete(upstream.request("Hi"), model)
    finally:
        await provider.aclose()


@pytest.mark.parametrize("kind", ["overloaded", "rate_limit", "server"])
async def test_an_adapter_never_retries(upstream: Upstream, kind: str) -> None:
    upstream.server.script(Reply(failure=Failure(kind, retry_after=0)))
    with pytest.raises(GatewayError):
        await upstream.provider.complete(upstream.request("Hi"), upstream.model)
    assert len(upstream.server.received) == 1
