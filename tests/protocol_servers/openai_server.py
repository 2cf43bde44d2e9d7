"""OpenAI's Chat Completions and Embeddings protocol: JSON, SSE with `data: [DONE]`, errors.

Checks requests as the API does: a Bearer key, `model` and `messages`, known roles, `tool`
messages answering a preceding assistant `tool_calls` id, `stream_options` only with `stream`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.protocol_servers.base import (
    MALFORMED_JSON,
    Failure,
    ProtocolError,
    ProtocolServer,
    Received,
    Reply,
    endpoint,
    sse,
    stop_applied,
    streaming,
    vector_for,
)

FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "stop_sequence": "stop",
    "content_filter": "content_filter",
}

# kind -> (status, type, code, param)
ERRORS: dict[str, tuple[int, str | None, str | None, str | None]] = {
    "bad_request": (400, "invalid_request_error", None, None),
    "auth": (401, "invalid_request_error", "invalid_api_key", None),
    "permission": (403, "invalid_request_error", "unsupported_country_region_territory", None),
    "not_found": (404, "invalid_request_error", "model_not_found", "model"),
    "rate_limit": (429, "requests", "rate_limit_exceeded", None),
    "overloaded": (503, "server_error", "engine_overloaded", None),
    "unavailable": (503, "server_error", None, None),
    "server": (500, "server_error", None, None),
    "context_length": (400, "invalid_request_error", "context_length_exceeded", "messages"),
    "content_filter": (400, "invalid_request_error", "content_policy_violation", None),
    "request_timeout": (408, "invalid_request_error", "timeout", None),
}

ROLES = {"system", "developer", "user", "assistant", "tool"}


class OpenAIServer(ProtocolServer):
    """`POST /v1/chat/completions` and `POST /v1/embeddings`, as OpenAI serves them."""

    name = "openai"
    errors = ERRORS

    def __init__(self, api_key: str = "sk-test-openai") -> None:
        super().__init__()
        self.api_key = api_key

    def routes(self) -> list[Route]:
        return [
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
        ]

    # ----------------------------------------------------------------- checks

    def authenticate(self, received: Received) -> None:
        if received.headers.get("authorization") != f"Bearer {self.api_key}":
            raise ProtocolError(401, "Incorrect API key provided.", "auth")

    def body(self, received: Received) -> dict[str, Any]:
        try:
            body = received.json()
        except ValueError:
            raise ProtocolError(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise ProtocolError(400, "The request body must be a JSON object.")
        return body

    def check_chat(self, body: dict[str, Any]) -> None:
        for required in ("model", "messages"):
            if required not in body:
                raise ProtocolError(400, f"Missing required parameter: '{required}'.")
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            raise ProtocolError(400, "'messages' must be a non-empty array.")
        open_calls: set[str] = set()
        for i, message in enumerate(messages):
            role = message.get("role")
            if role not in ROLES:
                raise ProtocolError(400, f"Invalid value: '{role}'. Supported values are {ROLES}.")
            if role == "assistant":
                open_calls = {call["id"] for call in message.get("tool_calls") or []}
            elif role == "tool" and message.get("tool_call_id") not in open_calls:
                raise ProtocolError(
                    400,
                    f"Invalid parameter: messages[{i}]: messages with role 'tool' must be a "
                    "response to a preceeding message with 'tool_calls'.",
                )
        if body.get("stream_options") is not None and not body.get("stream"):
            raise ProtocolError(
                400, "The 'stream_options' parameter is only allowed when 'stream' is enabled."
            )

    # ----------------------------------------------------------------- errors

    def error_body(self, failure: Failure, status: int) -> dict[str, Any]:
        _, kind_type, code, param = self.errors.get(failure.kind, (status, None, None, None))
        return {
            "error": {"message": failure.message, "type": kind_type, "param": param, "code": code}
        }

    def error_response(self, failure: Failure, status: int | None = None) -> Response:
        status = status or failure.status or self.errors[failure.kind][0]
        headers = {"x-request-id": f"req_{uuid.uuid4().hex}"}
        if failure.retry_after is not None:
            headers["retry-after"] = str(int(failure.retry_after))
            headers["retry-after-ms"] = str(int(failure.retry_after * 1000))
        return JSONResponse(self.error_body(failure, status), status_code=status, headers=headers)

    # ----------------------------------------------------------------- models

    @endpoint
    async def models(self, request: Request, received: Received) -> Response:
        self.authenticate(received)
        card = {"id": "gpt-test", "object": "model", "created": 1760000000, "owned_by": "test"}
        return JSONResponse({"object": "list", "data": [card]})

    # ----------------------------------------------------------------- chat

    @endpoint
    async def chat(self, request: Request, received: Received) -> Response:
        self.authenticate(received)
        body = self.body(received)
        self.check_chat(body)
        return await self.answer(body, self.next_reply())

    async def answer(self, body: dict[str, Any], reply: Reply) -> Response:
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.failure is not None and not reply.failure_in_stream:
            return self.error_response(reply.failure)
        stops = body.get("stop") or []
        text, hit = stop_applied(reply, [stops] if isinstance(stops, str) else stops)
        finish = "stop_sequence" if hit else reply.neutral_finish()
        finish_reason = reply.native_finish or FINISH[finish]
        if body.get("stream"):
            return self.stream(body, reply, text, finish_reason)
        if reply.malformed:
            return Response(MALFORMED_JSON, media_type="application/json")
        calls = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in reply.tool_calls
        ]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if reply.refusal else text if text or not calls else None,
            "refusal": reply.refusal,
            "annotations": [],
        }
        if calls:
            message["tool_calls"] = calls
        choices = [
            {"index": i, "message": message, "logprobs": None, "finish_reason": finish_reason}
            for i in range(body.get("n") or 1)
        ]
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": choices,
                "usage": self.usage(reply),
                "service_tier": "default",
                "system_fingerprint": "fp_protocol",
            }
        )

    def usage(self, reply: Reply) -> dict[str, Any]:
        return {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens or 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }

    def stream(self, body: dict[str, Any], reply: Reply, text: str, finish: str) -> Response:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_protocol",
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            data = {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
            if include_usage:
                data["usage"] = None
            return sse(data)

        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        if reply.malformed:
            events.append(b"data: {not json\n\n")
        if reply.refusal:
            events += [chunk({"refusal": piece}) for piece in reply.pieces(reply.refusal)]
        else:
            events += [chunk({"content": piece}) for piece in reply.pieces(text)]
        if reply.failure is not None:
            events.append(sse(self.error_body(reply.failure, 500)))
            return streaming(events, reply, "text/event-stream")
        for index, call in enumerate(reply.tool_calls):
            head = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            events.append(chunk({"tool_calls": [head]}))
            for piece in reply.pieces(json.dumps(call.arguments)):
                events.append(
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                )
        events.append(chunk({}, finish))
        if include_usage:
            events.append(sse({**base, "choices": [], "usage": self.usage(reply)}))
        events.append(b"data: [DONE]\n\n")
        return streaming(events, reply, "text/event-stream")

    # ----------------------------------------------------------------- embeddings

    @endpoint
    async def embeddings(self, request: Request, received: Received) -> Response:
        self.authenticate(received)
        body = self.body(received)
        return await self.embed_answer(body, self.next_reply())

    async def embed_answer(self, body: dict[str, Any], reply: Reply) -> Response:
        if "input" not in body or "model" not in body:
            raise ProtocolError(400, "'input' and 'model' are required.")
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.failure is not None:
            return self.error_response(reply.failure)
        if reply.malformed:
            return Response(MALFORMED_JSON, media_type="application/json")
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dims = body.get("dimensions") or 8
        data = []
        for index, text in enumerate(texts):
            vector = vector_for(str(text), dims)
            if body.get("encoding_format") == "base64":
                packed = struct.pack(f"<{len(vector)}f", *vector)
                embedding: Any = base64.b64encode(packed).decode()
            else:
                embedding = vector
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(len(str(t).split()) for t in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )
