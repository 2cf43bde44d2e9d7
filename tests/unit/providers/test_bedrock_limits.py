"""Bedrock under hostile or heavy input: 400s (not 500s) for malformed reasoning blocks, a cap
on Titan's one-call-per-text fan-out, and a thread pool that refuses rather than queues."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from gateway.errors import GatewayError, InvalidRequestError, ServiceUnavailableError
from gateway.providers.bedrock import EMBEDDING_CALLS_IN_FLIGHT
from gateway.providers.bedrock.threads import StreamOpening
from gateway.providers.blocking import BlockingPool, gather_bounded
from gateway.wire import MAX_EMBEDDING_INPUTS, EmbeddingRequest
from tests.protocol_servers import Failure, Reply
from tests.unit.providers.conftest import Upstream

CALL = [{"id": "t1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


def replayed(upstream: Upstream, block: dict[str, Any]) -> Any:
    assistant = {"role": "assistant", "content": None, "tool_calls": CALL}
    assistant["thinking_blocks"] = [block]
    tool = {"role": "tool", "tool_call_id": "t1", "content": "found"}
    return upstream.request("Look up", assistant, tool, tools=[TOOL])


@pytest.mark.parametrize(
    ("block", "field"),
    [
        ({"type": "redacted_thinking"}, "thinking_blocks[0].data"),
        ({"type": "redacted_thinking", "data": 7}, "thinking_blocks[0].data"),
        ({"type": "redacted_thinking", "data": "not base64!"}, "thinking_blocks[].data"),
        ({"type": "thinking", "signature": "s"}, "thinking_blocks[0].thinking"),
        ({"type": "thinking", "thinking": "x", "signature": 3}, "thinking_blocks[0].signature"),
    ],
)
async def test_a_malformed_reasoning_block_is_a_400_naming_the_field(
    bedrock_upstream: Upstream, block: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await bedrock_upstream.provider.complete(
            replayed(bedrock_upstream, block), bedrock_upstream.model
        )
    assert caught.value.status_code == 400 and caught.value.param == "messages"
    assert field in caught.value.message
    assert bedrock_upstream.server.received == []


async def test_a_malformed_reasoning_block_is_a_400_for_anthropic_too(
    anthropic_upstream: Upstream,
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await anthropic_upstream.provider.complete(
            replayed(anthropic_upstream, {"type": "redacted_thinking"}), anthropic_upstream.model
        )
    assert "thinking_blocks[0].data" in caught.value.message
    assert anthropic_upstream.server.received == []


async def test_too_many_titan_inputs_are_a_400_naming_input(bedrock_upstream: Upstream) -> None:
    model = bedrock_upstream.embed_model
    # Built past the wire model's own checks: the adapter guards itself whatever reaches it.
    request = EmbeddingRequest.model_construct(
        model=model.name, input=["x"] * (MAX_EMBEDDING_INPUTS + 1)
    )
    with pytest.raises(InvalidRequestError) as caught:
        await bedrock_upstream.provider.embed(request, model)
    assert caught.value.param == "input" and str(MAX_EMBEDDING_INPUTS) in caught.value.message
    assert bedrock_upstream.server.received == []


async def test_a_failed_titan_call_cancels_the_rest(bedrock_upstream: Upstream) -> None:
    model = bedrock_upstream.embed_model
    bedrock_upstream.server.script(Reply(failure=Failure("bad_request")))
    # Rounds slow enough that the failure always lands first, even on a loaded machine.
    bedrock_upstream.server.default_reply = Reply(delay_s=0.5)
    texts = [f"text {i}" for i in range(64)]
    with pytest.raises(GatewayError):
        await bedrock_upstream.provider.embed(
            EmbeddingRequest(model=model.name, input=texts), model
        )
    await asyncio.sleep(0.3)
    assert len(bedrock_upstream.server.received) <= 2 * EMBEDDING_CALLS_IN_FLIGHT


async def test_gather_bounded_runs_at_most_limit_at_once_in_order() -> None:
    running = peak = 0

    async def call(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1
        return i

    calls = [lambda i=i: call(i) for i in range(100)]
    assert await gather_bounded(calls, 16) == list(range(100))
    assert peak == 16


async def test_a_saturated_pool_refuses_with_a_503(bedrock_upstream: Upstream) -> None:
    provider: Any = bedrock_upstream.provider
    saved = provider._pool
    provider._pool = BlockingPool(1, backlog=1, name="test", provider=provider.name)
    bedrock_upstream.server.default_reply = Reply(delay_s=0.5)
    request, model = bedrock_upstream.request("Hi"), bedrock_upstream.model
    try:
        busy = [asyncio.create_task(provider.complete(request, model)) for _ in range(2)]
        await asyncio.sleep(0.1)
        with pytest.raises(ServiceUnavailableError) as caught:
            await provider.complete(request, model)
        assert caught.value.status_code == 503 and caught.value.code == "provider_overloaded"
        await asyncio.gather(*busy)
        assert provider._pool.outstanding == 0
    finally:
        provider._pool.shutdown()
        provider._pool = saved


async def test_a_queued_call_abandoned_at_its_deadline_never_runs() -> None:
    pool = BlockingPool(1, backlog=4, name="test", provider="p")
    release, ran = threading.Event(), []
    first = pool.submit(release.wait)
    queued = pool.submit(ran.append, 1)
    queued.cancel()
    # The cancel reaches the thread's future on the loop's next turn (asyncio chains it with
    # call_soon); in the adapters that turn comes long before the busy thread frees up.
    await asyncio.sleep(0)
    release.set()
    await first
    await asyncio.sleep(0.05)
    assert ran == [] and pool.outstanding == 0
    pool.shutdown()


class _Stream:
    closed = False

    def close(self) -> None:
        self.closed = True


def test_a_stream_that_opens_after_its_caller_gave_up_is_closed() -> None:
    late, early = _Stream(), _Stream()
    opening = StreamOpening(lambda: {"stream": late})
    opening.abandon()
    opening.open()
    assert late.closed
    opened = StreamOpening(lambda: {"stream": early})
    opened.open()
    opened.abandon()
    assert early.closed
