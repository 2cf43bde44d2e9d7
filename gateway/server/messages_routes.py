"""`POST /v1/messages` and `POST /v1/messages/count_tokens`: Anthropic's Messages API.

Authenticated by `x-api-key` or `Authorization: Bearer` with our keys (`anthropic-version` is
accepted, whatever its value); every answer and error is in Anthropic's shape.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from gateway.apis.messages import CountTokensRequest, error_body, parse_request, to_chat, to_message
from gateway.apis.messages_stream import message_events
from gateway.errors import GatewayError
from gateway.pipeline.context import RequestContext
from gateway.providers.native import TranslatedRequest
from gateway.server.runtime import GatewayRuntime
from gateway.server.translated import (
    finished_after,
    gated,
    json_answer,
    run_translated,
    stream_answer,
)
from gateway.tokens import count_prompt_tokens

JSON = "application/json"


def anthropic_error(error: GatewayError, request_id: str | None = None) -> Response:
    """An error as Anthropic answers it, with our status and headers (Retry-After)."""
    return Response(
        error_body(error, request_id),
        status_code=error.status_code,
        media_type=JSON,
        headers=error.headers(),
    )


def _forwarded(ctx: RequestContext) -> dict[str, str]:
    """Anthropic's own headers that change what a request means, sent on to an Anthropic
    model (betas); `anthropic-version` is the adapter's, and keys never leave."""
    beta = ctx.headers.get("anthropic-beta")
    return {"anthropic-beta": beta} if beta else {}


def add_messages_routes(api: FastAPI, runtime: GatewayRuntime) -> None:
    """Mount Anthropic's Messages API on `api`."""

    async def translate(ctx: RequestContext, raw: bytes) -> TranslatedRequest:
        request, body = parse_request(raw)
        return to_chat(request, body, _forwarded(ctx))

    @api.post("/v1/messages", include_in_schema=False)
    async def messages(request: Request) -> Response:
        ctx = await run_translated(runtime, request, "messages", translate)
        if ctx.error is not None:
            return finished_after(runtime, ctx, anthropic_error(ctx.error, ctx.request_id))
        assert ctx.model is not None
        if ctx.stream is not None:
            prompt = ctx.route_request.prompt_tokens if ctx.route_request else 0
            model = ctx.model.name
            return stream_answer(
                runtime,
                ctx,
                lambda frames: message_events(frames, model, prompt, lambda: ctx.error),
            )
        assert ctx.completed is not None
        message = to_message(orjson.loads(ctx.completed.body))
        message["model"] = ctx.model.name
        return json_answer(runtime, ctx, orjson.dumps(message))

    @api.post("/v1/messages/count_tokens", include_in_schema=False)
    async def count_tokens(request: Request) -> Response:
        """The prompt's tokens as the gateway estimates them for routing and limits."""
        ctx, raw = await gated(runtime, request)
        if ctx.error is not None:
            return anthropic_error(ctx.error, ctx.request_id)
        try:
            parsed, body = parse_request(raw, CountTokensRequest)
            chat = to_chat(parsed, body)
        except GatewayError as error:
            return anthropic_error(error, ctx.request_id)
        return Response(orjson.dumps({"input_tokens": count_prompt_tokens(chat)}), media_type=JSON)
