"""Ollama's native API: `/api/chat` (JSON or NDJSON stream), `/api/embed`, `/api/tags`, `/api/show`.

Checks requests as Ollama does: a known model (404 "not found, try pulling it first"), known
roles, images as base64 strings, tool-call arguments as objects.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from datetime import UTC, datetime
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
    stop_applied,
    streaming,
    vector_for,
)

DONE_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "stop",
    "stop_sequence": "stop",
    "content_filter": "stop",
}

ERRORS: dict[str, tuple[int, str]] = {
    "bad_request": (400, "invalid request"),
    "auth": (401, "unauthorized"),
    "permission": (403, "forbidden"),
    "not_found": (404, 'model "missing" not found, try pulling it first'),
    "rate_limit": (429, "too many requests"),
    "overloaded": (503, "server busy, please try again.  maximum pending requests exceeded"),
    "unavailable": (503, "server busy, please try again.  maximum pending requests exceeded"),
    "server": (500, "llama runner process has terminated: exit status 2"),
    "context_length": (400, "the input length exceeds the context length"),
    "request_timeout": (408, "request timed out"),
}

# name -> (family, context length, capabilities)
MODELS: dict[str, tuple[str, int, list[str]]] = {
    "llama3.2:latest": ("llama", 131072, ["completion", "tools"]),
    "llava:7b": ("llama", 32768, ["completion", "vision"]),
    "nomic-embed-text:latest": ("nomic-bert", 2048, ["embedding"]),
}

ROLES = {"system", "user", "assistant", "tool"}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class OllamaServer(ProtocolServer):
    """Ollama's HTTP API on a local port, with a fixed set of installed models."""

    name = "ollama"

    def __init__(self) -> None:
        super().__init__()
        self.models = dict(MODELS)

    def routes(self) -> list[Route]:
        return [
            Route("/api/chat", self.chat, methods=["POST"]),
            Route("/api/embed", self.embed, methods=["POST"]),
            Route("/api/tags", self.tags, methods=["GET"]),
            Route("/api/show", self.show, methods=["POST"]),
            Route("/api/version", self.version, methods=["GET"]),
        ]

    # ----------------------------------------------------------------- checks

    def resolve(self, name: str | None) -> str:
        if not name:
            raise ProtocolError(400, "model is required")
        full = name if ":" in name else f"{name}:latest"
        if full not in self.models:
            raise ProtocolError(404, f'model "{name}" not found, try pulling it first', "not_found")
        return full

    def body(self, received: Received) -> dict[str, Any]:
        try:
            return received.json()
        except ValueError:
            raise ProtocolError(400, "invalid character in JSON body") from None

    @staticmethod
    def check_messages(messages: list[dict[str, Any]]) -> None:
        for message in messages:
            if message.get("role") not in ROLES:
                raise ProtocolError(400, f"invalid role: {message.get('role')}")
            for image in message.get("images") or []:
                try:
                    base64.b64decode(image, validate=True)
                except (binascii.Error, ValueError, TypeError):
                    raise ProtocolError(400, "illegal base64 data in images") from None
            for call in message.get("tool_calls") or []:
                if not isinstance(call.get("function", {}).get("arguments"), dict):
                    raise ProtocolError(400, "tool call arguments must be an object")

    # ----------------------------------------------------------------- errors

    def error_response(self, failure: Failure, status: int | None = None) -> Response:
        default_status, message = ERRORS.get(failure.kind, (400, failure.message))
        if status is not None:  # a check of ours: its own message
            message = failure.message
        headers = {}
        if failure.retry_after is not None:
            headers["retry-after"] = str(int(failure.retry_after))
        return JSONResponse(
            {"error": message}, status_code=status or default_status, headers=headers
        )

    # ----------------------------------------------------------------- chat

    @endpoint
    async def chat(self, request: Request, received: Received) -> Response:
        body = self.body(received)
        model = self.resolve(body.get("model"))
        self.check_messages(body.get("messages") or [])
        reply = self.next_reply()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.failure is not None and not reply.failure_in_stream:
            return self.error_response(reply.failure)
        options = body.get("options") or {}
        text, _ = stop_applied(reply, options.get("stop") or [])
        done_reason = reply.native_finish or DONE_REASONS[reply.neutral_finish()]
        calls = [{"function": {"name": c.name, "arguments": c.arguments}} for c in reply.tool_calls]
        counts = {
            "total_duration": 123456789,
            "load_duration": 1234567,
            "prompt_eval_count": reply.prompt_tokens,
            "prompt_eval_duration": 2345678,
            "eval_count": reply.completion_tokens,
            "eval_duration": 3456789,
        }
        if body.get("stream", True):
            return self.stream(model, reply, text, calls, done_reason, counts)
        if reply.malformed:
            return Response(MALFORMED_JSON, media_type="application/json")
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = calls
        return JSONResponse(
            {
                "model": model,
                "created_at": _now(),
                "message": message,
                "done": True,
                "done_reason": done_reason,
                **counts,
            }
        )

    def stream(
        self,
        model: str,
        reply: Reply,
        text: str,
        calls: list[dict[str, Any]],
        done_reason: str,
        counts: dict[str, int],
    ) -> Response:
        def line(data: dict[str, Any]) -> bytes:
            return json.dumps(data).encode() + b"\n"

        def part(message: dict[str, Any], **extra: Any) -> bytes:
            return line({"model": model, "created_at": _now(), "message": message, **extra})

        events = [part({"role": "assistant", "content": p}, done=False) for p in reply.pieces(text)]
        if reply.malformed:
            events.insert(1, b"{not json\n")
        if reply.failure is not None:
            events.append(line({"error": ERRORS[reply.failure.kind][1]}))
            return streaming(events, reply, "application/x-ndjson")
        if calls:
            events.append(
                part({"role": "assistant", "content": "", "tool_calls": calls}, done=False)
            )
        events.append(
            part({"role": "assistant", "content": ""}, done=True, done_reason=done_reason, **counts)
        )
        return streaming(events, reply, "application/x-ndjson")

    # ----------------------------------------------------------------- embeddings

    @endpoint
    async def embed(self, request: Request, received: Received) -> Response:
        body = self.body(received)
        model = self.resolve(body.get("model"))
        if "embedding" not in self.models[model][2]:
            raise ProtocolError(400, f'"{model}" does not support embeddings')
        reply = self.next_reply()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.failure is not None:
            return self.error_response(reply.failure)
        if reply.malformed:
            return Response(MALFORMED_JSON, media_type="application/json")
        texts = body["input"] if isinstance(body.get("input"), list) else [body.get("input", "")]
        dims = body.get("dimensions") or 8
        return JSONResponse(
            {
                "model": model,
                "embeddings": [vector_for(t, dims) for t in texts],
                "total_duration": 14143917,
                "load_duration": 1019500,
                "prompt_eval_count": sum(len(t.split()) for t in texts),
            }
        )

    # ----------------------------------------------------------------- models

    @endpoint
    async def tags(self, request: Request, received: Received) -> Response:
        models = []
        for name, (family, _, _) in self.models.items():
            models.append(
                {
                    "name": name,
                    "model": name,
                    "modified_at": "2026-10-01T12:00:00.000000000Z",
                    "size": 2019393189,
                    "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
                    "details": {
                        "parent_model": "",
                        "format": "gguf",
                        "family": family,
                        "families": [family],
                        "parameter_size": "3.2B",
                        "quantization_level": "Q4_K_M",
                    },
                }
            )
        return JSONResponse({"models": models})

    @endpoint
    async def show(self, request: Request, received: Received) -> Response:
        body = self.body(received)
        name = self.resolve(body.get("model") or body.get("name"))
        family, context, capabilities = self.models[name]
        return JSONResponse(
            {
                "modelfile": f"FROM {name}",
                "parameters": 'stop "<|eot_id|>"',
                "template": "{{ .Prompt }}",
                "details": {"format": "gguf", "family": family, "families": [family]},
                "model_info": {
                    "general.architecture": family,
                    "general.parameter_count": 3212749888,
                    f"{family}.context_length": context,
                    f"{family}.embedding_length": 3072,
                },
                "capabilities": capabilities,
                "modified_at": "2026-10-01T12:00:00.000000000Z",
            }
        )

    @endpoint
    async def version(self, request: Request, received: Received) -> Response:
        return JSONResponse({"version": "0.13.0"})
