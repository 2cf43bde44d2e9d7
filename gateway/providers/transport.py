"""The pooled HTTP client the Stainless SDKs (openai, anthropic) run on, timed at the wire.

The SDKs build and parse requests on httpx2; what carries the bytes is their own aiohttp
transport (`openai.DefaultAioHttpClient`, the SDK's documented option), which costs about
half the CPU of httpx2's own httpcore2 stack a call here (bench/RESULTS.md, session 4).
Ollama's SDK builds its own httpx client from keyword arguments, boto3 has urllib3, and the
image fetcher stays on httpx2.

`x-llmgw-overhead-ms` is the gateway's time minus the provider's. Timing around an SDK call
would count the SDK's own CPU (building the request, parsing the answer) as the provider's;
timing from the request leaving to the response's headers counts only the wait for the
upstream's answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import httpx2
import openai

from gateway.config import ProviderConfig

_WIRE: ContextVar[list[float] | None] = ContextVar("llmgw_wire_seconds", default=None)
_SENT = "llmgw_sent"  # the request extension holding when the request left


@contextmanager
def wire_time() -> Iterator[list[float]]:
    """Collect, for the calls made inside the block, the seconds each spent on the wire."""
    spans: list[float] = []
    token = _WIRE.set(spans)
    try:
        yield spans
    finally:
        _WIRE.reset(token)


async def _sent(request: httpx2.Request) -> None:
    request.extensions[_SENT] = time.perf_counter()


async def _answered(response: httpx2.Response) -> None:
    """Each request's time from sending to the upstream's response headers (the body of a
    non-streamed answer follows at once; a stream's later chunks are timed by its reader)."""
    spans = _WIRE.get()
    sent = response.request.extensions.get(_SENT)
    if spans is not None and sent is not None:
        spans.append(time.perf_counter() - sent)


def pooled_client(config: ProviderConfig) -> httpx2.AsyncClient:
    """One connection pool per provider per replica, timed at the wire, redirects refused."""
    limits = httpx2.Limits(
        max_connections=config.max_connections,
        max_keepalive_connections=min(config.max_connections, 100),
    )
    return openai.DefaultAioHttpClient(
        limits=limits,
        timeout=httpx2.Timeout(600.0, connect=5.0),
        # Never: a 307 to another host would carry our API key and the prompt there.
        follow_redirects=False,
        event_hooks={"request": [_sent], "response": [_answered]},
    )
