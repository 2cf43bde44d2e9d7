"""What the gateway answers: chat completions and their stream chunks, token usage, the model
list, errors in OpenAI's shape, and `dump`, which serialises any of them as OpenAI does.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

from gateway.wire.base import OpenModel, omitted
from gateway.wire.messages import ToolCall


class PromptTokensDetails(OpenModel):
    cached_tokens: int = 0


class Usage(OpenModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = omitted()

    @classmethod
    def of(cls, prompt: int, completion: int, cached: int | None = None) -> Usage:
        details = PromptTokensDetails(cached_tokens=cached) if cached is not None else None
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details=details,
        )

    @property
    def cached_tokens(self) -> int:
        return self.prompt_tokens_details.cached_tokens if self.prompt_tokens_details else 0


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class ResponseMessage(OpenModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = omitted()


class Choice(OpenModel):
    index: int = 0
    message: ResponseMessage
    finish_reason: FinishReason
    logprobs: dict[str, Any] | None = None


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


class ChatCompletion(OpenModel):
    id: str = Field(default_factory=completion_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = omitted()


class FunctionCallDelta(OpenModel):
    name: str | None = omitted()
    arguments: str | None = omitted()


class ToolCallDelta(OpenModel):
    index: int
    id: str | None = omitted()
    type: Literal["function"] | None = omitted()
    function: FunctionCallDelta | None = omitted()


class Delta(OpenModel):
    role: Literal["assistant"] | None = omitted()
    content: str | None = omitted()
    refusal: str | None = omitted()
    tool_calls: list[ToolCallDelta] | None = omitted()


class ChunkChoice(OpenModel):
    index: int = 0
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(OpenModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = omitted()
    system_fingerprint: str | None = omitted()


class ModelCard(OpenModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(OpenModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def dump(model: BaseModel) -> bytes:
    """JSON bytes of a response model, shaped as OpenAI's."""
    return model.__pydantic_serializer__.to_json(model, by_alias=True)


class ErrorDetail(OpenModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(OpenModel):
    """Every error the gateway answers, as OpenAI shapes it."""

    error: ErrorDetail
