"""Running a request written in another API through the one pipeline.

The endpoint's body is read once the caller is authenticated (as for chat completions), turned
into our chat request by the endpoint's converter, and the pipeline runs on it as on any chat
call: validate, authorize, admit, enrich, route (use cases and `auto`), quota, invoke with
fallback, then meter and audit once the answer is out, under the endpoint's own name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from gateway.errors import GatewayError
from gateway.pipeline.context import Endpoint, RequestContext
from gateway.server.body import read_body
from gateway.server.runtime import GatewayRuntime
from gateway.server.streaming import sse_body
from gateway.wire import ChatCompletionRequest

# The endpoint's body (already within the size limit) -> our chat request.
Translate = Callable[[RequestContext, bytes], Awaitable[ChatCompletionRequest]]
# Our SSE frames -> the endpoint's.
Reframe = Callable[[AsyncIterator[bytes]], AsyncIterator[bytes]]


async def run_translated(
    runtime: GatewayRuntime, request: Request, endpoint: Endpoint, translate: Translate
) -> RequestContext:
    """The pipeline's way in for a request in another API; errors are kept in `ctx.error`."""
    from gateway.server.api import _context  # api.py mounts these routes

    ctx = _context(request, endpoint)
    limit = runtime.services.config.server.max_body_bytes

    async def body() -> bytes:
        raw = await read_body(request, limit)
        ctx.chat = await translate(ctx, raw)
        return raw

    await runtime.pipeline.run(ctx, body=body)
    return ctx


async def gated(runtime: GatewayRuntime, request: Request) -> tuple[RequestContext, bytes]:
    """A request that is no model call (count tokens, read a kept response): authenticated
    and authorized as model listings are, then its body read within the limit."""
    from gateway.server.api import _context  # api.py mounts these routes

    ctx = _context(request, "models")
    await runtime.pipeline.run(ctx)
    if ctx.error is not None or request.method in ("GET", "DELETE"):
        return ctx, b""
    limit = runtime.services.config.server.max_body_bytes
    try:
        return ctx, await read_body(request, limit)
    except GatewayError as error:
        ctx.error = error
        return ctx, b""


def finished_after(runtime: GatewayRuntime, ctx: RequestContext, response: Response) -> Response:
    """`response`, with metering and audit run once it is sent, off the client's clock."""
    response.background = BackgroundTask(runtime.pipeline.finish, ctx)
    return response


def served_headers(ctx: RequestContext) -> dict[str, str]:
    """The headers every answered model call carries (model, provider, cost, overhead)."""
    from gateway.server.api import _served_headers  # api.py mounts these routes

    return _served_headers(ctx)


def json_answer(runtime: GatewayRuntime, ctx: RequestContext, body: bytes) -> Response:
    """A non-streamed answer with the gateway's served headers (model, provider, cost)."""
    response = Response(body, media_type="application/json", headers=served_headers(ctx))
    return finished_after(runtime, ctx, response)


def stream_answer(runtime: GatewayRuntime, ctx: RequestContext, reframe: Reframe) -> Response:
    """Our stream, re-framed as the endpoint's events; the pipeline finishes when it ends."""
    headers = served_headers(ctx)
    headers["cache-control"] = "no-cache"
    return StreamingResponse(
        reframe(sse_body(ctx, runtime.pipeline.finish)),
        media_type="text/event-stream",
        headers=headers,
    )
