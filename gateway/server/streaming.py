"""A started stream turned into the SSE body the client reads, in one place.

Frames arrive already serialised; this only forwards them, keeps usage for metering, applies
the total timeout, turns a mid-stream failure into an error event, and always finishes the
pipeline (meter, audit) once the stream is over, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from gateway.errors import GatewayError, InternalError, UpstreamTimeoutError
from gateway.pipeline.context import RequestContext
from gateway.providers.framing import SSE_DONE, StreamTail, sse
from gateway.wire import Usage

CLIENT_CLOSED = 499


async def sse_body(
    ctx: RequestContext, finish: Callable[[RequestContext], Awaitable[None]]
) -> AsyncIterator[bytes]:
    """The bytes of `ctx.stream` as Server-Sent Events, ending with `data: [DONE]`."""
    start = ctx.stream
    assert start is not None and ctx.chat is not None
    options = ctx.chat.stream_options
    include_usage = bool(options and options.include_usage)
    content_frames = 0
    rest = start.rest
    try:
        pending = list(start.prefix)
        # The first write carries the frames that came with the head: one send, not several.
        opening = [start.head.frame]
        while pending and isinstance(pending[0], bytes):
            item = pending.pop(0)
            content_frames += item.count(b"\n\n")
            opening.append(item)
        yield b"".join(opening)
        while True:
            if pending:
                item = pending.pop(0)
            else:
                try:
                    async with asyncio.timeout_at(start.total_deadline):
                        item = await anext(rest, None)
                except TimeoutError:
                    raise UpstreamTimeoutError(
                        f"model '{start.model.name}' did not finish within its "
                        f"{start.model.timeouts.total_s:g} s, or the request's deadline passed",
                        provider=start.model.provider,
                    ) from None
            if item is None:
                break
            if isinstance(item, StreamTail):
                ctx.usage = item.usage
                ctx.upstream_ms += item.upstream_ms - item.upstream_ttft_ms
                if include_usage:
                    yield item.frame
            else:
                # A pool sends frames that were ready together as one item; each ends in
                # the one blank line its JSON cannot contain.
                content_frames += item.count(b"\n\n")
                yield item
        yield SSE_DONE
    except GatewayError as error:
        ctx.error, ctx.status = error, error.status_code
        yield sse(error.json())
    except asyncio.CancelledError:
        # The client went away: the upstream call is cancelled with the generator below.
        ctx.status = CLIENT_CLOSED
        raise
    except Exception:
        ctx.error = InternalError.for_request(ctx.request_id)
        ctx.status = 500
        yield sse(ctx.error.json())
    finally:
        closer = getattr(rest, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()
        if ctx.usage is None:
            # Cut short before the upstream reported usage: estimate the prompt, count what
            # was sent.
            prompt = ctx.route_request.prompt_tokens if ctx.route_request else 0
            ctx.usage = Usage.of(prompt, content_frames)
        await finish(ctx)
