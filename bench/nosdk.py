"""An experiment for a decision the team has not made, not a mode of llmgw: the openai adapter
with the SDK's request path replaced by one bare aiohttp call.

Issue 11's last two targets (TTFT p99 with 100 streams opened at once, inline on both cores
against Portkey) need about a third off the per-request CPU, and the profiles put the openai
SDK's own request path (building its options, headers, URL and httpx2 request, then its
response and stream wrappers) at roughly that. Whether to leave the SDK on the OpenAI-
compatible hot path is a change to the design card's "official SDKs" rule, so it is measured
here, in the bench only: `bench/noserve.py --no-sdk` (the bench's `llmgw-noserve-nosdk`) and
`bench/inproc.py --no-sdk` run the same app with `install()` applied.

What the patch drops besides the SDK's CPU, and a real adapter would have to rebuild: the
SDK's error classes (a non-200 answer here is a plain error), its auth refresh, Azure's
deployment URLs, and the wire timing behind `x-llmgw-overhead-ms` (the header then counts
the upstream's time as the gateway's).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from gateway.config import ModelConfig
from gateway.providers.openai import OpenAIProvider


class _Wire:
    """One provider's session, URL and headers."""

    def __init__(self, provider: OpenAIProvider) -> None:
        config = provider.config
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=config.max_connections),
            timeout=aiohttp.ClientTimeout(total=600, connect=5),
        )
        self.url = f"{str(config.base_url).rstrip('/')}/chat/completions"
        self.headers = {
            "authorization": f"Bearer {provider._key}",
            "content-type": "application/json",
        }

    async def post(self, params: dict[str, Any]) -> aiohttp.ClientResponse:
        response = await self.session.post(
            self.url, data=orjson.dumps(params), headers=self.headers
        )
        if response.status != 200:
            body = await response.read()
            response.release()
            raise RuntimeError(f"upstream answered {response.status}: {body[:200]!r}")
        return response


def _wire(provider: OpenAIProvider) -> _Wire:
    wire = provider.__dict__.get("_bench_wire")
    if wire is None:
        wire = provider.__dict__["_bench_wire"] = _Wire(provider)
    return wire


async def _create_completion(self: OpenAIProvider, params: dict[str, Any], _: ModelConfig) -> bytes:
    response = await _wire(self).post(params)
    try:
        return await response.read()
    finally:
        response.release()


async def _create_stream(self: OpenAIProvider, params: dict[str, Any], _: ModelConfig) -> Any:
    return _events(await _wire(self).post(params))


async def _events(response: aiohttp.ClientResponse) -> AsyncIterator[Any]:
    """The stream's `data:` payloads, decoded; ends at `[DONE]`."""
    try:
        async for line in response.content:
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                return
            yield orjson.loads(payload)
    finally:
        response.release()


async def _close_stream(self: OpenAIProvider, upstream: Any) -> None:
    await upstream.aclose()


def install() -> None:
    """Route this process's openai adapters around the SDK's request path."""
    OpenAIProvider._create_completion = _create_completion  # type: ignore[method-assign]
    OpenAIProvider._create_stream = _create_stream  # type: ignore[method-assign]
    OpenAIProvider._close_stream = _close_stream  # type: ignore[method-assign]
