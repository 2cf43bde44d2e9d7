"""Anthropic's Messages API (version 2026-10-21): JSON, named SSE events, errors.

Checks requests as the API does: a key (`x-api-key` or `Authorization: Bearer`), the
`anthropic-version` header, `max_tokens`, only `user`/`assistant` roles, no sampling
parameters (refused since 2026-10-21), and every `tool_use` answered by a `tool_result` in the
next message. A request that forces a tool gets that tool called, as the model would.
"""

from __future__ import annotations

import asyncio
import json
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
    ToolUse,
    endpoint,
    signature_of,
    sse,
    stop_applied,
    streaming,
)

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "stop_sequence": "stop_sequence",
    "content_filter": "refusal",
}

ERRORS: dict[str, tuple[int, str]] = {
    "bad_request": (400, "invalid_request_error"),
    "auth": (401, "authentication_error"),
    "permission": (403, "permission_error"),
    "not_found": (404, "not_found_error"),
    "rate_limit": (429, "rate_limit_error"),
    "overloaded": (529, "overloaded_error"),
    "unavailable": (503, "api_error"),
    "server": (500, "api_error"),
    "context_length": (400, "invalid_request_error"),
    "request_timeout": (504, "timeout_error"),
}

VERSIONS = {"2023-06-01", "2026-10-21"}
BLOCK_TYPES = {
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
}

# Models with thinking on: a tool-use turn sent back must start with its signed thinking.
THINKING_MODELS = {"claude-thinking-test"}


class AnthropicServer(ProtocolServer):
    """`POST /v1/messages`, as Anthropic serves it."""

    name = "anthropic"

    def __init__(self, api_key: str = "sk-ant-test") -> None:
        super().__init__()
        self.api_key = api_key

    def routes(self) -> list[Route]:
        return [
            Route("/v1/messages", self.messages, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
        ]

    # ----------------------------------------------------------------- checks

    def check(self, received: Received) -> dict[str, Any]:
        headers = received.headers
        if headers.get("x-api-key") != self.api_key and headers.get("authorization") != (
            f"Bearer {self.api_key}"
        ):
            raise ProtocolError(401, "invalid x-api-key", "auth")
        version = headers.get("anthropic-version")
        if version not in VERSIONS:
            raise ProtocolError(400, "anthropic-version: header is required and must be valid")
        try:
            body = received.json()
        except ValueError:
            raise ProtocolError(400, "There was an error parsing the body.") from None
        for required in ("model", "messages", "max_tokens"):
            if required not in body:
                raise ProtocolError(400, f"{required}: Field required")
        if version == "2026-10-21":
            for sampling in ("temperature", "top_p", "top_k"):
                if sampling in body:
                    raise ProtocolError(400, f"{sampling}: Extra inputs are not permitted")
        self.check_messages(body["messages"])
        if body["model"] in THINKING_MODELS:
            self.check_thinking(body["messages"])
        return body

    @staticmethod
    def check_messages(messages: list[dict[str, Any]]) -> None:
        pending: set[str] = set()
        for i, message in enumerate(messages):
            role = message.get("role")
            if role not in ("user", "assistant"):
                raise ProtocolError(
                    400, f"messages.{i}.role: Input should be 'user' or 'assistant'"
                )
            content = message.get("content")
            blocks = content if isinstance(content, list) else []
            answered = {b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"}
            if answered - pending:
                raise ProtocolError(
                    400,
                    f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` "
                    "blocks. Each `tool_result` block must have a corresponding `tool_use` block "
                    "in the previous message.",
                )
            if pending - answered:
                raise ProtocolError(
                    400,
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(sorted(pending - answered))}",
                )
            pending = {b["id"] for b in blocks if b.get("type") == "tool_use"}
            for block in blocks:
                if block.get("type") not in BLOCK_TYPES:
                    raise ProtocolError(400, f"messages.{i}.content: unknown block type")
        if pending:
            raise ProtocolError(400, "the last message has `tool_use` blocks without results")

    @staticmethod
    def check_thinking(messages: list[dict[str, Any]]) -> None:
        turns = [m for m in messages if m["role"] == "assistant" and isinstance(m["content"], list)]
        with_tools = [m for m in turns if any(b.get("type") == "tool_use" for b in m["content"])]
        if not with_tools:
            return
        first = with_tools[-1]["content"][0]
        index = messages.index(with_tools[-1])
        if first.get("type") not in ("thinking", "redacted_thinking"):
            raise ProtocolError(
                400,
                f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, "
                f"but found `{first.get('type')}`. When `thinking` is enabled, a final "
                "`assistant` message must start with a thinking block (preceeding the lastmost "
                "set of `tool_use` and `tool_result` blocks).",
            )
        if first["type"] == "thinking" and first.get("signature") != signature_of(
            first.get("thinking", "")
        ):
            raise ProtocolError(
                400, f"messages.{index}.content.0: Invalid `signature` in `thinking` block"
            )

    # ----------------------------------------------------------------- errors

    def error_body(self, failure: Failure) -> dict[str, Any]:
        kind_type = ERRORS.get(failure.kind, (400, "invalid_request_error"))[1]
        message = failure.message
        if failure.kind == "context_length":
            message = "prompt is too long: 212345 tokens > 200000 maximum"
        return {
            "type": "error",
            "error": {"type": kind_type, "message": message},
            "request_id": f"req_{uuid.uuid4().hex[:24]}",
        }

    def error_response(self, failure: Failure, status: int | None = None) -> Response:
        status = status or failure.status or ERRORS[failure.kind][0]
        headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}"}
        if failure.retry_after is not None:
            headers["retry-after"] = str(int(failure.retry_after))
        return JSONResponse(self.error_body(failure), status_code=status, headers=headers)

    # ----------------------------------------------------------------- models

    @endpoint
    async def models(self, request: Request, received: Received) -> Response:
        headers = received.headers
        if headers.get("x-api-key") != self.api_key and headers.get("authorization") != (
            f"Bearer {self.api_key}"
        ):
            raise ProtocolError(401, "invalid x-api-key", "auth")
        card = {"type": "model", "id": "claude-test", "display_name": "Claude Test",
                "created_at": "2026-10-01T00:00:00Z"}  # fmt: skip
        body = {"data": [card], "has_more": False, "first_id": "claude-test",
                "last_id": "claude-test"}  # fmt: skip
        return JSONResponse(body)

    # ----------------------------------------------------------------- messages

    @endpoint
    async def messages(self, request: Request, received: Received) -> Response:
        body = self.check(received)
        reply = self.next_reply()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.failure is not None and not reply.failure_in_stream:
            return self.error_response(reply.failure)
        return self.answer(body, reply)

    def answer(self, body: dict[str, Any], reply: Reply) -> Response:
        text, hit = stop_applied(reply, body.get("stop_sequences") or [])
        calls = list(reply.tool_calls)
        forced = (body.get("tool_choice") or {}).get("type") == "tool"
        if forced and not calls:
            # A forced tool is always called; the scripted text is its JSON input.
            name = body["tool_choice"]["name"]
            calls, text = [ToolUse(name, json.loads(reply.text or "{}"), id=_tool_id())], ""
        finish = "stop_sequence" if hit else ("tool_calls" if calls else reply.neutral_finish())
        if reply.finish is not None:
            finish = reply.finish
        stop_reason = reply.native_finish or STOP_REASONS[finish]
        if body.get("stream"):
            return self.stream(body, reply, text, calls, stop_reason, hit)
        if reply.malformed:
            return Response(MALFORMED_JSON, media_type="application/json")
        content: list[dict[str, Any]] = []
        if reply.thinking is not None:
            content.append(
                {
                    "type": "thinking",
                    "thinking": reply.thinking,
                    "signature": signature_of(reply.thinking),
                }
            )
        if text:
            content.append({"type": "text", "text": text})
        for call in calls:
            content.append(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
            )
        return JSONResponse(
            {
                "id": f"msg_{uuid.uuid4().hex[:24]}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": content,
                "stop_reason": stop_reason,
                "stop_sequence": hit,
                "usage": self.usage(reply),
            }
        )

    @staticmethod
    def usage(reply: Reply, output: bool = True) -> dict[str, Any]:
        cached = reply.cached_tokens or 0
        return {
            # Anthropic counts cached prompt tokens apart from `input_tokens`.
            "input_tokens": reply.prompt_tokens - cached,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached,
            "output_tokens": reply.completion_tokens if output else 1,
            "service_tier": "standard",
        }

    def stream(
        self,
        body: dict[str, Any],
        reply: Reply,
        text: str,
        calls: list[ToolUse],
        stop_reason: str,
        hit: str | None,
    ) -> Response:
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self.usage(reply, output=False),
        }
        events = [
            sse({"type": "message_start", "message": message}, "message_start"),
            sse({"type": "ping"}, "ping"),
        ]
        if reply.malformed:
            events.append(b"event: content_block_delta\ndata: {not json\n\n")
        index = 0
        if reply.thinking is not None:
            start = {"type": "thinking", "thinking": "", "signature": ""}
            signature = {"type": "signature_delta", "signature": signature_of(reply.thinking)}
            events.append(
                sse(
                    {"type": "content_block_start", "index": index, "content_block": start},
                    "content_block_start",
                )
            )
            for piece in reply.pieces(reply.thinking):
                delta = {"type": "thinking_delta", "thinking": piece}
                events.append(
                    sse(
                        {"type": "content_block_delta", "index": index, "delta": delta},
                        "content_block_delta",
                    )
                )
            events.append(
                sse(
                    {"type": "content_block_delta", "index": index, "delta": signature},
                    "content_block_delta",
                )
            )
            events.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
            index += 1
        if text:
            events.append(
                sse(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                    "content_block_start",
                )
            )
            for piece in reply.pieces(text):
                delta = {"type": "text_delta", "text": piece}
                events.append(
                    sse(
                        {"type": "content_block_delta", "index": index, "delta": delta},
                        "content_block_delta",
                    )
                )
            events.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
            index += 1
        if reply.failure is not None:
            events.append(sse(self.error_body(reply.failure), "error"))
            return streaming(events, reply, "text/event-stream")
        for call in calls:
            start = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
            events.append(
                sse(
                    {"type": "content_block_start", "index": index, "content_block": start},
                    "content_block_start",
                )
            )
            for piece in reply.pieces(json.dumps(call.arguments)):
                delta = {"type": "input_json_delta", "partial_json": piece}
                events.append(
                    sse(
                        {"type": "content_block_delta", "index": index, "delta": delta},
                        "content_block_delta",
                    )
                )
            events.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
            index += 1
        usage = self.usage(reply)
        events.append(
            sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": hit},
                    "usage": {
                        "output_tokens": usage["output_tokens"],
                        "input_tokens": usage["input_tokens"],
                        "cache_read_input_tokens": usage["cache_read_input_tokens"],
                        "cache_creation_input_tokens": 0,
                    },
                },
                "message_delta",
            )
        )
        events.append(sse({"type": "message_stop"}, "message_stop"))
        return streaming(events, reply, "text/event-stream")


def _tool_id() -> str:
    return f"toolu_{uuid.uuid4().hex[:24]}"
