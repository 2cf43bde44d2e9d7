"""The pooled HTTP client the httpx2-based SDKs (openai, anthropic) share the shape of, timed
at the wire. httpx2 is the adapters' one HTTP stack (the image fetcher uses it too); Ollama's
SDK builds its own httpx client from keyword arguments, and boto3 has urllib3.

`x-llmgw-overhead-ms` is the gateway's time minus the provider's. Timing around an SDK call
would count the SDK's own CPU (building the request, parsing the answer) as the provider's;
timing the transport counts only the wait for the upstream's answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import httpx2

from gateway.config import ProviderConfig

_WIRE: ContextVar[list[float] | None] = ContextVar("llmgw_wire_seconds", default=None)


@contextmanager
def wire_time() -> Iterator[list[float]]:
    """Collect, for the calls made inside the block, the seconds each spent on the wire."""
    spans: list[float] = []
    token = _WIRE.set(spans)
    try:
        yield spans
    finally:
        _WIRE.reset(token)


class TimedTransport(httpx2.AsyncBaseTransport):
    """A transport that records, into the active `wire_time` block, each request's time from
    sending to the upstream's response headers (the body of a non-streamed answer follows at
    once; a stream's later chunks are timed by the stream's reader)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        start = time.perf_counter()
        try:
            return await self._inner.handle_async_request(request)
        finally:
            spans = _WIRE.get()
            if spans is not None:
                spans.append(time.perf_counter() - start)

    async def aclose(self) -> None:
        await self._inner.aclose()


def pooled_client(config: ProviderConfig) -> httpx2.AsyncClient:
    """One connection pool per provider per replica, timed at the wire, redirects refused."""
    limits = httpx2.Limits(
        max_connections=config.max_connections,
        max_keepalive_connections=min(config.max_connections, 100),
    )
    transport = TimedTransport(httpx2.AsyncHTTPTransport(limits=limits))
    return httpx2.AsyncClient(
        transport=transport,
        timeout=httpx2.Timeout(600.0, connect=5.0),
        # Never: a 307 to another host would carry our API key and the prompt there.
        follow_redirects=False,
    )
