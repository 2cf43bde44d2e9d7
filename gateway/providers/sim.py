"""The `sim` provider: deterministic output for demos, load tests and chaos tests.

Text is a function of the seed, the model and the prompt; time to first token, token rate,
output length and failures (rate, statuses, a stream cut mid-way) come from `SimSettings`,
set on the provider and overridable per model. Usage is counted as a real provider counts it.
It stands in for no real provider's adapter in tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

from gateway.config import ModelConfig, ProviderConfig, SimSettings
from gateway.errors import UpstreamError, from_status
from gateway.providers.base import Provider
from gateway.providers.deadline import Budget, Deadline, Unbounded
from gateway.providers.streams import ChunkStream, StreamState
from gateway.providers.support import SUPPORT
from gateway.tokens import count_prompt_tokens, count_tokens
from gateway.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    Delta,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    FunctionCall,
    FunctionCallDelta,
    ResponseMessage,
    ToolCall,
    ToolCallDelta,
    Usage,
    text_of,
)

_WORDS = tuple(
    (
        "the gateway routes each request to a model that fits its use case cost and latency "
        "while tenants keep their budgets and every call is metered audited and compared so "
        "platform teams can trust what they serve data scientists sweep models over datasets "
        "with sound statistics and operators scale each pool on its own"
    ).split()
)


@dataclass
class SimReply:
    """What the sim will answer to one request, decided before any time passes."""

    tokens: list[str]
    tool_calls: list[ToolCall]
    finish_reason: str
    prompt_tokens: int

    @property
    def completion_tokens(self) -> int:
        calls = sum(count_tokens(c.function.name + c.function.arguments) for c in self.tool_calls)
        return len(self.tokens) + calls


def _seeded(*parts: object) -> random.Random:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return random.Random(struct.unpack("<Q", digest)[0])


def _example(schema: dict[str, Any], rng: random.Random) -> Any:
    """A value that satisfies a (simple) JSON schema: enough for tool arguments and JSON mode."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: _example(sub, rng) for name, sub in props.items()}
    if kind == "array":
        return [_example(schema.get("items", {"type": "string"}), rng)]
    if kind == "integer":
        return rng.randint(1, 100)
    if kind == "number":
        return round(rng.uniform(0, 100), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    return rng.choice(_WORDS)


class SimProvider(Provider):
    """Deterministic text, tool calls and JSON at a configured speed, with injected failures."""

    type = "sim"
    supports = SUPPORT["sim"].capabilities
    # A stand-in answers JSON and images whatever its (loosely configured) models declare.
    model_checked: ClassVar[frozenset[str]] = frozenset({"tools"})

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._failures = random.Random((config.sim or SimSettings()).seed)

    def settings(self, model: ModelConfig) -> SimSettings:
        return model.sim or self.config.sim or SimSettings()

    def _reply(self, request: ChatCompletionRequest, model: ModelConfig) -> SimReply:
        settings = self.settings(model)
        prompt = [(m.role, text_of(m.content)) for m in request.messages]
        rng = _seeded(settings.seed, model.upstream_id, prompt, request.seed)
        prompt_tokens = count_prompt_tokens(request)
        limit = min(model.max_output_tokens, request.output_limit() or model.max_output_tokens)

        tool = self._tool_to_call(request)
        if tool is not None:
            arguments = json.dumps(_example(tool.function.parameters or {}, rng))
            call = ToolCall(
                id=f"call_{rng.getrandbits(64):016x}",
                function=FunctionCall(name=tool.function.name, arguments=arguments),
            )
            return SimReply([], [call], "tool_calls", prompt_tokens)

        fmt = request.response_format
        if fmt is not None and fmt.type != "text":
            schema = fmt.json_schema.schema_ if fmt.json_schema else None
            value = _example(schema or {"type": "object", "properties": {"answer": {}}}, rng)
            return SimReply([json.dumps(value)], [], "stop", prompt_tokens)

        words = [rng.choice(_WORDS) for _ in range(settings.output_tokens)]
        tokens = [w if i == 0 else " " + w for i, w in enumerate(words)]
        finish = "stop"
        if len(tokens) > limit:
            tokens, finish = tokens[:limit], "length"
        text = ""
        for i, token in enumerate(tokens):
            text += token
            hit = next((s for s in request.stop_list() if s and s in text), None)
            if hit is not None:
                kept = text[: text.index(hit)]
                tokens = tokens[:i] + ([kept[len(text) - len(token) :]] if kept else [])
                tokens = [t for t in tokens if t]
                finish = "stop"
                break
        return SimReply(tokens, [], finish, prompt_tokens)

    @staticmethod
    def _tool_to_call(request: ChatCompletionRequest) -> Any:
        if not request.tools or request.tool_choice == "none":
            return None
        choice = request.tool_choice
        if choice is not None and not isinstance(choice, str):
            return next((t for t in request.tools if t.function.name == choice.function.name), None)
        # "auto" calls a tool when the user just spoke, and answers once a tool result is back.
        if choice == "required" or request.messages[-1].role == "user":
            return request.tools[0]
        return None

    def _maybe_fail(self, settings: SimSettings) -> None:
        if settings.failure_rate and self._failures.random() < settings.failure_rate:
            status = self._failures.choice(settings.failure_statuses)
            raise from_status(
                status,
                f"sim injected failure {status}",
                provider=self.name,
                retry_after=1.0 if status == 429 else None,
            )

    @staticmethod
    def _delay(settings: SimSettings, tokens: int) -> float:
        per_token = 1.0 / settings.tokens_per_s if settings.tokens_per_s else 0.0
        return settings.ttft_ms / 1000 + per_token * tokens

    def _deadline(self, model: ModelConfig, budget: Budget | None) -> Deadline:
        # Its delays are its settings; the invoker's own timer bounds the request.
        return Unbounded(self.name)

    # ----------------------------------------------------------------- chat

    async def _convert_completion_params(
        self, request: ChatCompletionRequest, model: ModelConfig, *, stream: bool
    ) -> SimReply:
        self._maybe_fail(self.settings(model))
        return self._reply(request, model)

    async def _create_completion(self, reply: SimReply, model: ModelConfig) -> SimReply:
        delay = self._delay(self.settings(model), reply.completion_tokens)
        if delay:
            await asyncio.sleep(delay)
        return reply

    def _convert_completion_response(
        self, reply: SimReply, request: ChatCompletionRequest, model: ModelConfig
    ) -> ChatCompletion:
        message = ResponseMessage(
            content="".join(reply.tokens) if reply.tokens or not reply.tool_calls else None,
            tool_calls=reply.tool_calls or None,
        )
        choices = [
            Choice(index=i, message=message, finish_reason=reply.finish_reason)
            for i in range(request.n or 1)
        ]
        usage = Usage.of(reply.prompt_tokens, reply.completion_tokens * (request.n or 1))
        return ChatCompletion(model=model.name, choices=choices, usage=usage)

    async def _create_stream(
        self, reply: SimReply, model: ModelConfig
    ) -> AsyncIterator[Delta | SimReply]:
        settings = self.settings(model)
        if settings.ttft_ms:
            await asyncio.sleep(settings.ttft_ms / 1000)
        return self._deltas(reply, settings)

    async def _deltas(
        self, reply: SimReply, settings: SimSettings
    ) -> AsyncIterator[Delta | SimReply]:
        """The reply as deltas at the configured pace, then the reply itself (its end)."""
        per_token = 1.0 / settings.tokens_per_s if settings.tokens_per_s else 0.0
        yield Delta(role="assistant", content="")
        for i, call in enumerate(reply.tool_calls):
            head = ToolCallDelta(
                index=i,
                id=call.id,
                type="function",
                function=FunctionCallDelta(name=call.function.name, arguments=""),
            )
            yield Delta(tool_calls=[head])
            args = call.function.arguments
            step = max(1, math.ceil(len(args) / 4))
            for start in range(0, len(args), step):
                piece = FunctionCallDelta(arguments=args[start : start + step])
                yield Delta(tool_calls=[ToolCallDelta(index=i, function=piece)])
        for sent, token in enumerate(reply.tokens):
            if settings.cut_stream_after is not None and sent >= settings.cut_stream_after:
                raise UpstreamError(f"sim cut the stream after {sent} tokens", provider=self.name)
            if per_token:
                await asyncio.sleep(per_token)
            yield Delta(content=token)
        yield reply

    def _convert_completion_chunk_response(
        self, event: Delta | SimReply, chunks: ChunkStream, state: StreamState
    ) -> list[ChatCompletionChunk]:
        if isinstance(event, Delta):
            return [chunks.chunk(event)]
        state.finished = True
        state.usage = Usage.of(event.prompt_tokens, event.completion_tokens)
        return [chunks.chunk(Delta(), finish_reason=event.finish_reason)]

    # ----------------------------------------------------------------- embeddings

    async def _convert_embedding_params(
        self, request: EmbeddingRequest, model: ModelConfig
    ) -> SimSettings:
        settings = self.settings(model)
        self._maybe_fail(settings)
        return settings

    async def _create_embedding(self, settings: SimSettings, model: ModelConfig) -> SimSettings:
        return settings

    def _convert_embedding_response(
        self, settings: SimSettings, request: EmbeddingRequest, model: ModelConfig
    ) -> EmbeddingResponse:
        dims = request.dimensions or 64
        data = []
        for index, text in enumerate(request.texts()):
            rng = _seeded(settings.seed, model.upstream_id, text)
            vector = [rng.gauss(0, 1) for _ in range(dims)]
            norm = math.sqrt(sum(v * v for v in vector)) or 1.0
            data.append(Embedding(index=index, embedding=[v / norm for v in vector]))
        tokens = sum(count_tokens(t) for t in request.texts())
        usage = EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)
        return EmbeddingResponse(data=data, model=model.name, usage=usage)
